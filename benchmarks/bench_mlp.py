"""Speed benchmarks of the AnyLoss multi-layer perceptron (AnyLossMLPClassifier).

Four measurements, printed as a markdown report:

1. Fit time against scikit-learn's ``MLPClassifier`` (log-loss): the same
   network (hidden layer (64,), ReLU), optimiser (Adam, learning rate 0.001),
   batch size (256) and number of epochs (exactly 20), at n = 100,000, d = 20.
2. Fit time against a PyTorch CPU implementation (float64, autograd,
   ``torch.optim.Adam``) of the same AnyLoss network and loss: the soft
   confusion matrix of each mini-batch with F1, plus MLPClassifier's L2 term
   ``alpha / (2 b) ||W||^2``; at n = 100,000 and n = 5,000, d = 20.
3. The AnyLoss paper's setting on scikit-learn's breast-cancer data
   (standardised): hidden layer (2,), logistic activation, Adam with learning
   rate 0.001, 100 epochs, batch size 5 % of the rows; ours, PyTorch and
   MLPClassifier.
4. One epoch of ours at n = 100,000 broken into its parts (batch gather,
   forward and backward pass, the BLAS products, the ReLU loops, the Adam
   update, the per-epoch batch order), to show where the time goes.

Synthetic data: standard normal ``X`` (seed 0), ``y`` from a noisy nonlinear
rule thresholded to 20 % positives.  Every implementation is warmed up once
(Numba compilation, PyTorch's first-call costs) before the timed runs; times
are medians over repeats, run round-robin across implementations.  Every
implementation may use all the cores of the process (PyTorch:
``torch.set_num_threads``).  Before each section the script waits until no
other Python or pytest process runs and the load average is low (polling every
30 s, up to ``--max-wait`` seconds) and records the load average.

    python benchmarks/bench_mlp.py [--quick] [--output FILE]

Needs the ``bench`` extra (PyTorch).
"""

import argparse
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from functools import partial

import numba
import numpy as np
import scipy
import sklearn
from numba import njit
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import f1_score
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info

import sk_anyloss
from sk_anyloss import AnyLossMLPClassifier
from sk_anyloss._kernels_cpu import (
    MLPBackend,
    cpu_metric,
    mlp_forward,
    mlp_loss_grad,
)
from sk_anyloss._metrics import Metric
from sk_anyloss._metrics_multi import LABELS as LABELS_LAYOUT
from sk_anyloss._mlp import _stratified_order
from sk_anyloss._optim import Optimizer, new_state
from sk_anyloss._settings import ACTIVATION_CODES, SIGMOID, MLPSettings

SEED = 0
METRIC = "f1"
AMPLIFIER = 73.0
# The paper's loss alone (no log-loss term), as the PyTorch version trains.
LOG_LOSS_WEIGHT = 0.0
ALPHA = 1e-4
LEARNING_RATE = 0.001
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-8

FULL = {
    "sklearn_case": (100_000, 20, (64,), 256, 20),
    "torch_cases": [(100_000, 20, (64,), 256, 20), (5_000, 20, (64,), 256, 20)],
    "paper_epochs": 100,
    "repeats": 3,
    "profile_size": (100_000, 20, (64,), 256),
    "profile_repeats": 5,
}
QUICK = {
    "sklearn_case": (10_000, 20, (64,), 256, 3),
    "torch_cases": [(10_000, 20, (64,), 256, 3), (2_000, 20, (64,), 256, 3)],
    "paper_epochs": 10,
    "repeats": 1,
    "profile_size": (10_000, 20, (64,), 256),
    "profile_repeats": 1,
}


# -- machine state ---------------------------------------------------------


def n_cores():
    """Number of CPU cores this process may run on."""
    return len(os.sched_getaffinity(0))


def _related_pids():
    """This process, its ancestors and its descendants: not competitors."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout
    parent = {}
    for line in out.splitlines():
        pid, ppid = map(int, line.split())
        parent[pid] = ppid
    related = {os.getpid()}
    pid = os.getpid()
    while pid in parent and parent[pid] > 1:
        pid = parent[pid]
        related.add(pid)
    changed = True
    while changed:
        children = {p for p, pp in parent.items() if pp in related} - related
        changed = bool(children)
        related |= children
    return related


def other_python_processes():
    """``(pid, command)`` of the Python or pytest processes not related to us."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    related = _related_pids()
    found = []
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if int(pid) in related or not args:
            continue
        program = os.path.basename(args.split()[0])
        if re.fullmatch(r"python[\d.]*|pytest", program) or "pytest" in args:
            found.append((int(pid), args[:80]))
    return found


def wait_until_idle(max_wait, max_load, poll=30.0):
    """Wait until no other Python/pytest process runs and the 1-minute load
    average is below ``max_load`` (at most ``max_wait`` seconds).

    Returns the load average when the wait ended, the seconds waited and
    whether the machine was idle then.
    """
    start = time.monotonic()
    while True:
        others = other_python_processes()
        load = os.getloadavg()
        idle = not others and load[0] < max_load
        waited = time.monotonic() - start
        if idle or waited + poll > max_wait:
            return {"load": load, "waited": waited, "idle": idle, "others": others}
        print(
            f"waiting for an idle machine: load {load[0]:.2f}, "
            f"{len(others)} other Python/pytest process(es)",
            file=sys.stderr,
        )
        time.sleep(poll)


# -- data and models -------------------------------------------------------


def make_data(n, d, seed=SEED):
    """Standard normal ``X`` and a 0/1 ``y`` from a noisy nonlinear rule.

    The rule (a sine of one projection, the square of another, an interaction
    and Gaussian noise) is thresholded at its 80th percentile: 20 % positives.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    u, v = rng.standard_normal((2, d)) / np.sqrt(d)
    score = (
        np.sin(2.0 * (X @ u))
        + 0.5 * (X @ v) ** 2
        + 0.5 * X[:, 0] * X[:, 1]
        + 0.5 * rng.standard_normal(n)
    )
    y = (score > np.quantile(score, 0.8)).astype(np.int64)
    return X, y


def breast_cancer():
    """scikit-learn's breast-cancer data, standardised (569 x 30)."""
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def fit_ours(
    X, y, hidden, activation, batch_size, epochs, log_loss_weight=LOG_LOSS_WEIGHT
):
    """AnyLossMLPClassifier for exactly ``epochs`` epochs; ``(n_iter_, predict)``."""
    clf = AnyLossMLPClassifier(
        metric=METRIC,
        amplifier=AMPLIFIER,
        log_loss_weight=log_loss_weight,
        hidden_layer_sizes=hidden,
        activation=activation,
        alpha=ALPHA,
        batch_size=batch_size,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=10**6,
        learning_rate_init=LEARNING_RATE,
        beta_1=BETA_1,
        beta_2=BETA_2,
        epsilon=EPSILON,
        random_state=SEED,
    ).fit(X, y)
    return clf.n_iter_, clf.predict


def fit_sklearn(X, y, hidden, activation, batch_size, epochs):
    """MLPClassifier (log-loss), exactly ``epochs`` epochs; ``(n_iter_, predict)``."""
    clf = MLPClassifier(
        hidden_layer_sizes=hidden,
        activation=activation,
        solver="adam",
        alpha=ALPHA,
        batch_size=batch_size,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=10**6,
        early_stopping=False,
        shuffle=True,
        learning_rate_init=LEARNING_RATE,
        beta_1=BETA_1,
        beta_2=BETA_2,
        epsilon=EPSILON,
        random_state=SEED,
    ).fit(X, y)
    return clf.n_iter_, clf.predict


def fit_torch(X, y, hidden, activation, batch_size, epochs):
    """The AnyLoss network in PyTorch (CPU, float64), trained like ours.

    ``Linear(d, h) - activation - ... - Linear(h, 1)`` with Glorot-uniform
    initialisation as MLPClassifier; per mini-batch (rows of a random
    permutation, new every epoch) ``p = sigmoid(z)``,
    ``a = sigmoid(L (p - 1/2))``, ``TP = sum_{y=1} a / b``,
    ``FP = sum_{y=0} a / b``, ``FN = P - TP`` and the loss
    ``1 - 2 TP / (2 TP + FP + FN) + alpha / (2 b) sum ||W||^2``; autograd and
    ``torch.optim.Adam``.  Returns the number of epochs and a ``predict``.
    """
    import torch

    torch.set_num_threads(n_cores())
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    n, d = X.shape
    act = {"relu": torch.nn.ReLU, "logistic": torch.nn.Sigmoid}[activation]
    layers = []
    widths = [d, *hidden, 1]
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layer = torch.nn.Linear(n_in, n_out, dtype=torch.float64)
        bound = math.sqrt((2.0 if activation == "logistic" else 6.0) / (n_in + n_out))
        with torch.no_grad():
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
        layers.append(layer)
        if i < len(widths) - 2:
            layers.append(act())
    model = torch.nn.Sequential(*layers)
    weights = [layer.weight for layer in model if isinstance(layer, torch.nn.Linear)]
    # The fused (single-kernel) Adam: the fastest of PyTorch's three Adam
    # implementations on this small network (for-loop, foreach, fused).
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=LEARNING_RATE,
        betas=(BETA_1, BETA_2),
        eps=EPSILON,
        fused=True,
    )
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y.astype(np.float64))
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            xb, yb = Xt[idx], yt[idx]
            b = xb.shape[0]
            p = torch.sigmoid(model(xb).squeeze(1))
            a = torch.sigmoid(AMPLIFIER * (p - 0.5))
            # TP = sum_{y=1} a / b, FP = sum_{y=0} a / b, FN = P - TP, so
            # 2 TP + FP + FN = TP + FP + P: fewer operations, the same loss.
            tp = (a @ yb) / b
            fp = a.sum() / b - tp
            positives = yb.sum() / b
            penalty = sum(W.square().sum() for W in weights)
            loss = 1.0 - 2.0 * tp / (tp + fp + positives) + ALPHA / (2 * b) * penalty
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def predict(X):
        with torch.no_grad():
            z = model(torch.from_numpy(X)).squeeze(1)
        return (z >= 0.0).numpy().astype(np.int64)

    return epochs, predict


IMPLEMENTATIONS = {
    "ours": fit_ours,
    # The estimator's default for F1 adds a class-balanced log-loss term.
    "ours_log_loss": partial(fit_ours, log_loss_weight=0.5),
    "sklearn": fit_sklearn,
    "torch": fit_torch,
}


def compare(names, X, y, hidden, activation, batch_size, epochs, repeats):
    """Median fit time of each implementation; runs round-robin after a warm-up.

    Only the fit is timed.  Returns ``{name: {"time": s, "n_iter": epochs run,
    "f1": training F1 of the last fit}}``.
    """
    args = (X, y, hidden, activation, batch_size, epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name in names:  # warm-up: compilation, first-call costs
            IMPLEMENTATIONS[name](*args)
        times = {name: [] for name in names}
        results = {}
        for _ in range(repeats):
            for name in names:
                start = time.perf_counter()
                results[name] = IMPLEMENTATIONS[name](*args)
                times[name].append(time.perf_counter() - start)
    summary = {}
    for name in names:
        n_iter, predict = results[name]
        if n_iter != epochs:
            raise RuntimeError(f"{name} ran {n_iter} epochs instead of {epochs}")
        summary[name] = {
            "time": statistics.median(times[name]),
            "n_iter": n_iter,
            "f1": f1_score(y, predict(X)),
        }
    return summary


# -- one epoch, broken down --------------------------------------------------


@njit(cache=True)
def _gather_only(X, Y, order, batch_size):
    """The batch gather of the epoch kernel alone."""
    n = order.shape[0]
    d = X.shape[1]
    K = Y.shape[1]
    check = 0.0
    for start in range(0, n, batch_size):
        b = min(start + batch_size, n) - start
        Xb = np.empty((b, d))
        Yb = np.empty((b, K), dtype=np.uint8)
        sb = np.empty(b)
        for r in range(b):
            i = order[start + r]
            for j in range(d):
                Xb[r, j] = X[i, j]
            for k in range(K):
                Yb[r, k] = Y[i, k]
            sb[r] = 1.0
        sb /= np.sum(sb)
        check += Xb[0, 0] + Yb[0, 0] + sb[0]
    return check


@njit(cache=True)
def _forward_only(Xs, theta, dims, activation, batch_size):
    """``mlp_forward`` on each batch of the pre-gathered rows ``Xs``."""
    n = Xs.shape[0]
    check = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        acts = mlp_forward(Xs[start:stop], theta, dims, activation)
        check += acts[-1][0, 0]
    return check


@njit(cache=True)
def _loss_grad_only(Xs, Ys, theta, dims, settings, metric, params):
    """``mlp_loss_grad`` (forward, loss, backward) on each batch of ``Xs``."""
    n = Xs.shape[0]
    batch_size = settings.batch_size
    grad = np.empty_like(theta)
    check = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        sb = np.full(stop - start, 1.0 / (stop - start))
        check += mlp_loss_grad(
            Xs[start:stop],
            Ys[start:stop],
            sb,
            theta,
            dims,
            settings,
            metric,
            params,
            settings.alpha / (stop - start),  # the L2 factor of an unweighted batch
            float(stop - start),  # the batch's total weight
            grad,
        )
    return check


@njit(cache=True)
def _blas_only(Xs, W1, W2, batch_size):
    """The five matrix products of each batch (one hidden layer)."""
    n = Xs.shape[0]
    check = 0.0
    for start in range(0, n, batch_size):
        Xb = Xs[start : min(start + batch_size, n)]
        H = np.dot(Xb, W1)  # forward, hidden layer
        Z = np.dot(H, W2)  # forward, output
        gW2 = np.dot(H.T, Z)  # backward, output weights
        D = np.dot(Z, W2.T)  # backward, delta of the hidden layer
        gW1 = np.dot(Xb.T, D)  # backward, hidden weights
        check += gW1[0, 0] + gW2[0, 0]
    return check


@njit(cache=True)
def _adam_only(theta, grad, m, v, n_batches):
    """The Adam update of the epoch kernel, ``n_batches`` times."""
    for t in range(1, n_batches + 1):
        step = LEARNING_RATE * math.sqrt(1.0 - BETA_2**t) / (1.0 - BETA_1**t)
        for j in range(theta.shape[0]):
            m[j] = BETA_1 * m[j] + (1.0 - BETA_1) * grad[j]
            v[j] = BETA_2 * v[j] + (1.0 - BETA_2) * grad[j] * grad[j]
            theta[j] -= step * m[j] / (math.sqrt(v[j]) + EPSILON)
    return theta[0]


def profile_epoch(n, d, hidden, batch_size, repeats):
    """Median time (seconds) of one epoch of ours and of its parts.

    The parts run on the epoch's own batches (rows in the epoch's order,
    gathered beforehand), each in its own compiled loop, so that they see the
    same data as the epoch.
    """
    X, y = make_data(n, d)
    Y = y.astype(np.uint8)[:, None]
    dims = np.array([d, *hidden, 1], dtype=np.int64)
    n_params = int(np.sum((dims[:-1] + 1) * dims[1:]))
    theta = np.random.default_rng(SEED).uniform(-0.1, 0.1, n_params)
    relu = ACTIVATION_CODES["relu"]
    identity = ACTIVATION_CODES["identity"]
    metric = Metric(METRIC)
    optimizer = Optimizer(0, LEARNING_RATE, 0.0, BETA_1, BETA_2, EPSILON)

    def settings(activation):
        return MLPSettings(
            activation, SIGMOID, LABELS_LAYOUT, 1, False, AMPLIFIER, LOG_LOSS_WEIGHT,
            ALPHA, batch_size, optimizer,
        )  # fmt: skip

    backend = MLPBackend(X, Y, np.ones(n))
    order = _stratified_order(y, True, np.random.RandomState(SEED))
    n_batches = -(-n // batch_size)
    Xs = np.ascontiguousarray(X[order])
    Ys = np.ascontiguousarray(Y[order])
    W1 = theta[: d * hidden[0]].reshape(d, hidden[0]).copy()
    W2 = np.ascontiguousarray(theta[: hidden[0]].reshape(hidden[0], 1))

    def epoch():
        backend.epoch(
            order, theta.copy(), dims, settings(relu), metric, new_state(n_params)
        )

    def loss_grad(activation):
        return lambda: _loss_grad_only(
            Xs, Ys, theta, dims, settings(activation), cpu_metric(metric), metric.params
        )

    parts = {
        "epoch": epoch,
        "gather": lambda: _gather_only(X, Y, order, batch_size),
        "loss_grad": loss_grad(relu),
        "loss_grad_identity": loss_grad(identity),
        "forward": lambda: _forward_only(Xs, theta, dims, relu, batch_size),
        "blas": lambda: _blas_only(Xs, W1, W2, batch_size),
        "adam": lambda: _adam_only(
            theta.copy(),
            np.full(n_params, 1e-3),
            np.zeros(n_params),
            np.zeros(n_params),
            n_batches,
        ),
        "order": lambda: _stratified_order(y, True, np.random.RandomState(SEED)),
    }
    for fn in parts.values():  # warm-up: compilation
        fn()
    times = {name: [] for name in parts}
    for _ in range(repeats):  # round-robin, as the fits
        for name, fn in parts.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    result = {name: statistics.median(t) for name, t in times.items()}
    result["n_batches"] = n_batches
    return result


# -- report ------------------------------------------------------------------


def source_version():
    """``sk_anyloss`` version and git commit, flagged if the package is modified."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(sk_anyloss.__file__)))

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown commit"
    if git("status", "--porcelain", "--", "sk_anyloss"):
        commit += ", with uncommitted changes to sk_anyloss"
    return f"sk_anyloss {sk_anyloss.__version__} ({commit})"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def numba_threading():
    """Numba's threading layer, if a parallel region has run in this process."""
    try:
        layer = f"threading layer `{numba.threading_layer()}`"
    except ValueError:
        layer = (
            "no threading layer started (the MLP kernels run no parallel region; "
            "their matrix products use the BLAS threads)"
        )
    return f"Numba {numba.__version__}: {layer}, {numba.get_num_threads()} threads"


def machine_report(started):
    import torch

    blas = "; ".join(
        sorted(
            {
                f"{lib['prefix']} {lib['version']} ({lib['num_threads']} threads)"
                for lib in threadpool_info()
                if lib["user_api"] == "blas"
            }
        )
    )
    torch.set_num_threads(n_cores())
    return "\n".join(
        [
            f"- Date: {started:%Y-%m-%d %H:%M UTC}",
            f"- Command: `{shlex.join(['python', *sys.argv])}`",
            f"- Code: {source_version()}",
            f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores "
            f"({n_cores()} usable by this process)",
            f"- {numba_threading()}",
            f"- Python {platform.python_version()}, NumPy {np.__version__} "
            f"(BLAS: {blas}), SciPy {scipy.__version__}, "
            f"scikit-learn {sklearn.__version__}, PyTorch {torch.__version__} "
            f"({torch.get_num_threads()} threads)",
        ]
    )


def idle_line(state):
    line = "Load average (1, 5, 15 min) before this section: " + ", ".join(
        f"{x:.2f}" for x in state["load"]
    )
    if state["waited"] >= 1:
        line += f" (after waiting {state['waited']:.0f} s for an idle machine)"
    if not state["idle"]:
        busy = "; ".join(f"{pid} `{args}`" for pid, args in state["others"])
        line += " **not idle** (" + (busy or "load above the threshold") + ")"
    return line + "."


def setting_line(hidden, activation, batch_size, epochs):
    return (
        f"Hidden layers {hidden}, activation {activation}, Adam (learning rate "
        f"{LEARNING_RATE}, betas {BETA_1}/{BETA_2}, epsilon {EPSILON}), alpha "
        f"{ALPHA}, batch size {batch_size}, {epochs} epochs; AnyLoss: metric "
        f"{METRIC}, amplifier {AMPLIFIER:g}, float64."
    )


LABELS = {
    "ours": "ours",
    "ours_log_loss": "ours + log-loss term",
    "sklearn": "MLPClassifier",
    "torch": "PyTorch",
}


def table_row(data, X, repeats, results):
    """One row of :func:`fit_table`: the data set and :func:`compare`'s results."""
    n, d = X.shape
    return {"data": data, "n": n, "d": d, "repeats": repeats, "results": results}


def fit_table(rows, names, labels=LABELS):
    """Times, ratios to ours, epochs run and training F1 of ``names``."""
    header = (
        "| data | n | d | repeats | "
        + " | ".join(f"{labels[k]} s" for k in names)
        + " | "
        + " | ".join(f"{labels[k]} / ours" for k in names if k != "ours")
        + " | epochs run | "
        + " | ".join(f"train F1 {labels[k]}" for k in names)
        + " |"
    )
    n_cols = 5 + 2 * len(names) + len(names) - 1
    lines = [header, "|---" * n_cols + "|"]
    for r in rows:
        res = r["results"]
        lines.append(
            f"| {r['data']} | {r['n']:,} | {r['d']} | {r['repeats']} | "
            + " | ".join(f"{res[k]['time']:.3f}" for k in names)
            + " | "
            + " | ".join(
                f"{res[k]['time'] / res['ours']['time']:.2f}"
                for k in names
                if k != "ours"
            )
            + " | "
            + "/".join(str(res[k]["n_iter"]) for k in names)
            + " | "
            + " | ".join(f"{res[k]['f1']:.3f}" for k in names)
            + " |"
        )
    return "\n".join(lines)


def profile_report(n, d, hidden, batch_size, repeats, prof, fit_epoch=None):
    """Table of :func:`profile_epoch`; ``fit_epoch`` is a fit's time per epoch."""
    nb = prof["n_batches"]
    activation_loops = prof["loss_grad"] - prof["loss_grad_identity"]
    rows = [
        ("`MLPBackend.epoch`, one epoch (the whole compiled loop)", prof["epoch"]),
        ("batch gather (copy of the rows into `Xb`, `Yb`, `sb`)", prof["gather"]),
        ("`mlp_loss_grad` (forward, loss, backward)", prof["loss_grad"]),
        ("- of which `mlp_forward`", prof["forward"]),
        ("- of which the five `np.dot` products (timed alone)", prof["blas"]),
        (
            "- of which the ReLU loops, forward and derivative (`mlp_loss_grad` "
            "minus the same with the identity activation)",
            activation_loops,
        ),
        (
            "- rest: amplification and confusion matrix, bias sums, L2 term, "
            "temporaries (a difference)",
            prof["loss_grad"] - prof["blas"] - activation_loops,
        ),
        ("Adam update", prof["adam"]),
        (
            "epoch minus gather, `mlp_loss_grad` and Adam (a difference)",
            prof["epoch"] - prof["gather"] - prof["loss_grad"] - prof["adam"],
        ),
        (
            "`_stratified_order` (once per epoch, outside the epoch kernel)",
            prof["order"],
        ),
    ]
    if fit_epoch is not None:
        rows.append(("`AnyLossMLPClassifier.fit` time / epochs (section 1)", fit_epoch))
    lines = [
        f"### 4. One epoch of ours, broken down (n={n:,}, d={d}, hidden {hidden}, "
        f"batch {batch_size}: {nb} batches; median of {repeats})",
        "",
        "Each part is timed alone, in its own compiled loop over the epoch's "
        "batches (the rows in the epoch's order, gathered beforehand).",
        "",
        "| part | ms per epoch | us per batch | share of the epoch |",
        "|---|---|---|---|",
    ]
    for label, t in rows:
        lines.append(
            f"| {label} | {1e3 * t:.1f} | {1e6 * t / nb:.1f} "
            f"| {t / prof['epoch']:.0%} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--output", help="also write the report to this file")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="seconds to wait for an idle machine before each section "
        "(default 900; 0 with --quick)",
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=0.5 * n_cores(),
        help="1-minute load average below which the machine counts as idle "
        "(default: half the usable cores)",
    )
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    max_wait = (
        args.max_wait if args.max_wait is not None else (0.0 if args.quick else 900.0)
    )
    repeats = config["repeats"]

    def idle():
        return wait_until_idle(max_wait, args.max_load)

    started = datetime.now(timezone.utc)
    sections = []

    # 1. Against MLPClassifier.
    n, d, hidden, batch, epochs = config["sklearn_case"]
    state = idle()
    X, y = make_data(n, d)
    names = ["ours", "ours_log_loss", "sklearn"]
    res_sklearn = res = compare(names, X, y, hidden, "relu", batch, epochs, repeats)
    sections.append(
        "\n\n".join(
            [
                "### 1. Fit time against scikit-learn's MLPClassifier (log-loss)",
                setting_line(hidden, "relu", batch, epochs)
                + " 'ours + log-loss term': the same with `log_loss_weight=0.5`"
                " (the estimator's default for F1), for its cost. " + idle_line(state),
                fit_table([table_row("synthetic", X, repeats, res)], names),
            ]
        )
    )

    # 2. Against PyTorch.
    rows = []
    loads = []
    for n, d, hidden, batch, epochs in config["torch_cases"]:
        state = idle()
        loads.append(f"n={n:,}: " + idle_line(state))
        X, y = make_data(n, d)
        res = compare(["ours", "torch"], X, y, hidden, "relu", batch, epochs, repeats)
        rows.append(table_row("synthetic", X, repeats, res))
    sections.append(
        "\n\n".join(
            [
                "### 2. Fit time against PyTorch (same AnyLoss network and loss)",
                setting_line(hidden, "relu", batch, epochs)
                + " Batches: ours stratified (each batch holds the classes in "
                "proportion), PyTorch a random permutation each epoch.",
                "\n".join(f"- {line}" for line in loads),
                fit_table(rows, ["ours", "torch"]),
            ]
        )
    )

    # 3. The AnyLoss paper's setting on breast cancer.
    X, y = breast_cancer()
    batch = round(0.05 * X.shape[0])
    epochs = config["paper_epochs"]
    state = idle()
    res = compare(
        ["ours", "torch", "sklearn"], X, y, (2,), "logistic", batch, epochs, repeats
    )
    sections.append(
        "\n\n".join(
            [
                "### 3. The AnyLoss paper's setting: breast cancer "
                "(569 x 30, standardised)",
                setting_line((2,), "logistic", batch, epochs)
                + " Batch size: 5 % of the rows, rounded. MLPClassifier (log-loss) "
                "for scale. " + idle_line(state),
                fit_table(
                    [table_row("breast cancer", X, repeats, res)],
                    ["ours", "torch", "sklearn"],
                ),
            ]
        )
    )

    # 4. Where the time of an epoch goes.
    n, d, hidden, batch = config["profile_size"]
    state = idle()
    prof = profile_epoch(n, d, hidden, batch, config["profile_repeats"])
    fit_epoch = None
    if (n, d, hidden, batch) == config["sklearn_case"][:4]:
        fit_epoch = res_sklearn["ours"]["time"] / config["sklearn_case"][4]
    sections.append(
        profile_report(n, d, hidden, batch, config["profile_repeats"], prof, fit_epoch)
        + "\n\n"
        + idle_line(state)
    )

    header = ["## Benchmark: AnyLoss MLP", machine_report(started)]
    report = "\n\n".join(header + sections) + "\n"
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
