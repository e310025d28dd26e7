"""
===================
Training on the GPU
===================

With ``device="cuda"`` the estimators run their epochs on an NVIDIA GPU
through ``numba.cuda`` kernels; ``device="auto"`` uses the GPU when one is
usable and the CPU otherwise. The model, its parameters and its fitted
attributes are the same on both devices: a model fitted on the GPU predicts
on a machine without one.

This example is not executed when the documentation is built, since the
build machine may have no GPU. It needs the ``cuda`` extra
(``pip install "sk_anyloss[cuda]"``) and an NVIDIA driver.
"""

# %%
# A large problem
# ---------------
# The GPU pays off when one epoch streams a lot of data: here a million rows
# of 50 features. For small data the CPU kernels are faster.
import time

import numpy as np

from sk_anyloss import AnyLossClassifier
from sk_anyloss.metrics import get_scorer

rng = np.random.default_rng(0)
n, d = 1_000_000, 50
X = rng.standard_normal((n, d), dtype=np.float32)
w = rng.standard_normal(d)
y = (X @ w + rng.standard_normal(n) * 4 > 6).astype(int)
print(f"{y.mean():.1%} positive")

# %%
# The same model on both devices
# ------------------------------
# float32 data stay float32 on either device. The first fit on each device
# compiles its kernels; the timed fits come after.
for device in ["cpu", "cuda"]:
    clf = AnyLossClassifier(metric="f1", max_iter=200, tol=None, device=device)
    clf.fit(X[:1000], y[:1000])  # compile
    start = time.perf_counter()
    clf.fit(X, y)
    elapsed = time.perf_counter() - start
    f1 = get_scorer("f1")(clf, X, y)
    print(f"{device}: {elapsed:.2f} s for {clf.n_iter_} epochs, training F1 {f1:.4f}")
