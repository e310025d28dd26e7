"""
===========================
The MLP's decision boundary
===========================

:class:`~sk_anyloss.AnyLossMLPClassifier` is scikit-learn's
:class:`~sklearn.neural_network.MLPClassifier` network trained on a metric.
On two interleaved half-moons with one positive for every nine negatives,
the same network is trained on log-loss, on F1 and on balanced accuracy.
Balanced accuracy weighs a missed positive nine times as much as a false
alarm, and its network moves the boundary well into the majority class; the
F1 network moves it a little. Which of the log-loss and the F1 network scores
the better F1 on such data varies with the sample: the titles give the test
scores of this one.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.inspection import DecisionBoundaryDisplay
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from sk_anyloss import AnyLossMLPClassifier

X, y = make_moons(n_samples=4000, noise=0.3, random_state=0)
rng = np.random.default_rng(0)
keep = (y == 0) | (rng.random(y.shape[0]) < 1 / 9)
X, y = X[keep], y[keep]
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
print(f"{len(y)} samples, {y.mean():.1%} positive")

hidden = (32, 32)
models = {
    "MLPClassifier (log-loss)": MLPClassifier(
        hidden_layer_sizes=hidden, max_iter=500, random_state=0
    ),
    "AnyLoss F1": AnyLossMLPClassifier(
        hidden_layer_sizes=hidden, metric="f1", random_state=0
    ),
    "AnyLoss balanced accuracy": AnyLossMLPClassifier(
        hidden_layer_sizes=hidden, metric="balanced_accuracy", random_state=0
    ),
}

# %%
# Decision boundaries on the test set
# -----------------------------------
fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
for ax, (name, model) in zip(axes, models.items()):
    model.fit(X_train, y_train)
    y_pred = model.predict(X_test)
    DecisionBoundaryDisplay.from_estimator(
        model,
        X,
        response_method="predict",
        cmap="coolwarm",
        alpha=0.25,
        ax=ax,
        grid_resolution=200,
    )
    ax.scatter(*X_test[y_test == 0].T, s=6, c="tab:blue", label="negative")
    ax.scatter(*X_test[y_test == 1].T, s=10, c="tab:red", label="positive")
    ax.set_title(
        f"{name}\nF1 {f1_score(y_test, y_pred):.3f}, "
        f"balanced acc. {balanced_accuracy_score(y_test, y_pred):.3f}",
        fontsize="medium",
    )
axes[0].legend(loc="lower left")
fig.tight_layout()
plt.show()
