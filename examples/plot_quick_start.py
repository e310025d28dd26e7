"""
===========
Quick start
===========

Train a linear model on F1 on the breast-cancer data, where the positive class
(malignant) is the minority, and look at what it learnt.
"""

# %%
# Data and model
# --------------
# scikit-learn's target marks benign tumours with 1; the positive class here is
# malignant, so the target is flipped. The estimators take the larger label,
# ``classes_[1]``, as the positive class. Features are standardised, as for any
# gradient-trained linear model.
import matplotlib.pyplot as plt
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import ConfusionMatrixDisplay, classification_report
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_anyloss import AnyLossClassifier
from sk_anyloss.metrics import get_scorer

X, y = load_breast_cancer(return_X_y=True)
y = 1 - y  # 1 = malignant
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
model = make_pipeline(StandardScaler(), AnyLossClassifier(metric="f1"))
model.fit(X_train, y_train)

# %%
# Scores
# ------
# :func:`~sk_anyloss.metrics.get_scorer` gives the scikit-learn scorer of the
# metric the model was trained on.
print(f"test F1: {get_scorer('f1')(model, X_test, y_test):.3f}")
print(classification_report(y_test, model.predict(X_test), digits=3))

# %%
# The confusion matrix and the training loss
# ------------------------------------------
# ``loss_curve_`` holds ``1 - F1`` of the soft confusion matrix at each
# iteration; training stopped when it no longer improved.
clf = model[-1]
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.5))
ConfusionMatrixDisplay.from_estimator(
    model,
    X_test,
    y_test,
    display_labels=["benign", "malignant"],
    ax=ax0,
    colorbar=False,
)
ax0.set_title("Test set")
ax1.plot(clf.loss_curve_)
ax1.set(
    xlabel="iteration",
    ylabel="1 - soft F1",
    yscale="log",
    title=f"Training loss ({clf.n_iter_} iterations)",
)
fig.tight_layout()
plt.show()
