"""Speed of the CUDA backend (``device="cuda"``), printed as a markdown report.

1. Linear epoch against the memory-bandwidth floor.  ``X`` float32
   (n = 10,000,000, d = 50 by default).  The floor is the time to stream ``X``
   once: a PyTorch ``X.sum()`` on the GPU (a tuned reduction) and, for
   reference, the theoretical peak bandwidth of the device.  The epoch is
   timed alone (the epoch and block-reduction kernels) and inside the training
   loop (``AnyLossClassifier(device="cuda", tol=None, max_iter=K).fit`` over
   ``K``).  Target: at most 1.5x the floor.
2. Linear fit time, K full-batch Adam iterations from zero: ``device="cuda"``
   against ``device="cpu"`` and against the same model, loss and optimiser in
   PyTorch on the GPU (float32, the soft confusion matrix and F1 written out,
   Adam written out as in ``AnyLossClassifier``).  Target: at least 2x faster
   than PyTorch.
3. MLP fit time (n = 1,000,000, d = 50, hidden (256, 256), batch 4096): the
   AnyLoss network with ``device="cuda"`` against the same network, loss and
   ``torch.optim.Adam`` in PyTorch on the GPU, in float64 (the precision of
   the CUDA kernels) and float32.

Times are medians over repeats, each after one untimed warm-up run that also
compiles the kernels.

    python benchmarks/bench_cuda.py [--tiny] [--output FILE]

Needs a CUDA GPU, the ``cuda`` extra and, for the PyTorch columns, a CUDA
build of PyTorch (the ``bench`` extra).  ``--tiny`` runs every section at toy
sizes; it also runs on Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``,
PyTorch then on the CPU) as a smoke test of the script, whose times mean
nothing.
"""

import argparse
import json
import math
import platform
import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sk_anyloss import AnyLossClassifier, AnyLossMLPClassifier
from sk_anyloss._backend import resolve_device

SEED = 0
AMPLIFIER = 73.0
MLP_AMPLIFIER = 20.0
LEARNING_RATE = 0.01
ALPHA = 1.0
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-8

FULL = {
    "linear": (10_000_000, 50),
    "linear_iter": 20,
    "repeats": 5,
    "mlp": (1_000_000, 50, (256, 256), 4096),
    "mlp_epochs": 2,
}
TINY = {
    "linear": (400, 5),
    "linear_iter": 2,
    "repeats": 1,
    "mlp": (120, 5, (6, 6), 60),
    "mlp_epochs": 1,
    # Small launches, so that the CUDA simulator gets through in a minute.
    "geometry": {"THREADS_PER_BLOCK": 32, "MAX_BLOCKS": 4, "TILE": 4},
}


def make_data(n, d, seed=SEED):
    """Standard-normal float32 features, about 20 % positives."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal(d).astype(np.float32)
    y = (X @ w + rng.standard_normal(n, dtype=np.float32) > 1.2).astype(np.int64)
    return X, y


def median_time(fn, repeats, sync=lambda: None):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_device():
    try:
        import torch
    except ImportError:
        return None, None
    return torch, ("cuda" if torch.cuda.is_available() else "cpu")


def peak_bandwidth():
    """Theoretical memory bandwidth of the current GPU in bytes per second."""
    from numba import cuda

    try:
        dev = cuda.get_current_device()
        clock_khz = dev.MEMORY_CLOCK_RATE
        bus_bits = dev.GLOBAL_MEMORY_BUS_WIDTH
    except Exception:  # the simulator, or attributes the driver lacks
        return None
    return 2.0 * clock_khz * 1e3 * bus_bits / 8


def cuda_kernels():
    from sk_anyloss import _kernels_cuda

    return _kernels_cuda


def bench_linear_epoch(n, d, iters, repeats):
    from numba import cuda

    kc = cuda_kernels()
    X, y = make_data(n, d)
    y01 = y.astype(np.uint8)
    results = {"bytes": X.nbytes}
    torch, where = torch_device()
    if torch is not None:
        Xt = torch.from_numpy(X).to(where)
        sync = torch.cuda.synchronize if where == "cuda" else (lambda: None)
        results["stream_torch"] = median_time(lambda: Xt.sum(), repeats, sync)
        results["stream_device"] = where
        del Xt
    peak = peak_bandwidth()
    results["stream_peak"] = None if peak is None else X.nbytes / peak

    tpb = kc.THREADS_PER_BLOCK
    kernels = kc._linear_kernels(tpb)
    width = 2 * d + 4
    n_blocks = min((n + tpb - 1) // tpb, kc.MAX_BLOCKS)
    X_d = cuda.to_device(X)
    y_d = cuda.to_device(y01[:, None])
    sw_d = cuda.to_device(np.full(n, 1.0 / n))
    theta = cuda.to_device(0.01 * np.ones(d + 1))
    part = cuda.device_array((n_blocks, width))
    total = cuda.device_array(width)
    counts = cuda.to_device(np.zeros(2, np.int64))

    def epochs():
        for _ in range(iters):
            kernels.labels_pass[(n_blocks, 1), tpb](
                X_d, y_d, sw_d, theta, AMPLIFIER, False, part, counts
            )
            kernels.reduce_part[width, tpb](part, total, counts)

    results["epoch_kernels"] = median_time(epochs, repeats, cuda.synchronize) / iters
    model = AnyLossClassifier(device="cuda", tol=None, max_iter=iters, warmup_iter=0)
    results["epoch_in_fit"] = median_time(lambda: model.fit(X, y), repeats) / iters
    return results


def fit_torch_linear(torch, where, X, y, iters):
    """The linear AnyLoss model in PyTorch: float32, autograd, Adam written out."""
    n, d = X.shape
    Xt = torch.from_numpy(X).to(where)
    is_pos = torch.from_numpy(y.astype(np.float32)).to(where)
    is_neg = 1.0 - is_pos
    pos = is_pos.sum() / n
    w = torch.zeros(d, device=where, requires_grad=True)
    b = torch.zeros((), device=where, requires_grad=True)
    params = (w, b)
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]

    def fit():
        with torch.no_grad():
            for p, (m, v) in zip(params, moments):
                p.zero_()
                m.zero_()
                v.zero_()
        for t in range(1, iters + 1):
            p = torch.sigmoid(Xt @ w + b)
            a = torch.sigmoid(AMPLIFIER * (p - 0.5))
            tp = (a @ is_pos) / n
            fp = (a @ is_neg) / n
            fn = pos - tp
            loss = 1.0 - 2.0 * tp / (2.0 * tp + fp + fn)
            grads = torch.autograd.grad(loss, params)
            step = LEARNING_RATE * math.sqrt(1.0 - BETA_2**t) / (1.0 - BETA_1**t)
            with torch.no_grad():
                for param, grad, (m, v) in zip(params, grads, moments):
                    m.mul_(BETA_1).add_((1.0 - BETA_1) * grad)
                    v.mul_(BETA_2).add_((1.0 - BETA_2) * grad * grad)
                    param.sub_(step * m / (v.sqrt() + EPSILON))

    return fit


def bench_linear_fit(n, d, iters, repeats):
    X, y = make_data(n, d)
    results = {}
    for device in ("cuda", "cpu"):
        model = AnyLossClassifier(
            device=device,
            tol=None,
            max_iter=iters,
            warmup_iter=0,
            learning_rate_init=LEARNING_RATE,  # the PyTorch model's step
            amplifier=AMPLIFIER,  # and its loss
        )
        results[device] = median_time(lambda m=model: m.fit(X, y), repeats)
    torch, where = torch_device()
    if torch is not None:
        sync = torch.cuda.synchronize if where == "cuda" else (lambda: None)
        fit = fit_torch_linear(torch, where, X, y, iters)
        results["torch"] = median_time(fit, repeats, sync)
        results["torch_device"] = where
    return results


def fit_torch_mlp(torch, where, dtype, X, y, hidden, batch_size, epochs):
    """The AnyLoss MLP in PyTorch: ReLU layers, the F1 loss of each batch plus
    ``alpha / (2 b) sum |W|^2``, ``torch.optim.Adam`` (fused)."""
    n, d = X.shape
    widths = [d, *hidden, 1]
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(n_in, n_out, dtype=dtype, device=where))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=LEARNING_RATE,
        betas=(BETA_1, BETA_2),
        eps=EPSILON,
        fused=where == "cuda",
    )
    Xt = torch.from_numpy(X).to(device=where, dtype=dtype)
    yt = torch.from_numpy(y).to(device=where, dtype=dtype)
    generator = torch.Generator().manual_seed(SEED)

    def fit():
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator).to(where)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                xb, yb = Xt[idx], yt[idx]
                b = xb.shape[0]
                p = torch.sigmoid(model(xb).squeeze(1))
                a = torch.sigmoid(MLP_AMPLIFIER * (p - 0.5))
                tp = (a @ yb) / b
                fp = a.sum() / b - tp
                positives = yb.sum() / b
                penalty = sum(W.square().sum() for W in weights)
                loss = (
                    1.0 - 2.0 * tp / (tp + fp + positives) + ALPHA / (2 * b) * penalty
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    return fit


def bench_mlp(n, d, hidden, batch_size, epochs, repeats):
    X, y = make_data(n, d)
    params = dict(
        hidden_layer_sizes=hidden,
        activation="relu",
        amplifier=MLP_AMPLIFIER,
        log_loss_weight=0.0,  # the metric loss alone, as the PyTorch version
        alpha=ALPHA,
        batch_size=batch_size,
        learning_rate_init=LEARNING_RATE,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=10**6,
        random_state=SEED,
    )
    results = {}
    model = AnyLossMLPClassifier(device="cuda", **params)
    results["cuda"] = median_time(lambda: model.fit(X, y), repeats)
    torch, where = torch_device()
    if torch is not None:
        sync = torch.cuda.synchronize if where == "cuda" else (lambda: None)
        for name, dtype in (
            ("torch_float64", torch.float64),
            ("torch_float32", torch.float32),
        ):
            fit = fit_torch_mlp(torch, where, dtype, X, y, hidden, batch_size, epochs)
            results[name] = median_time(fit, repeats, sync)
        results["torch_device"] = where
    return results


def device_name():
    from numba import cuda

    try:
        return str(cuda.get_current_device().name)
    except Exception:
        return "unknown"


def report(config, epoch, fit, mlp):
    n, d = config["linear"]
    ms = 1e3
    lines = [
        "# CUDA backend benchmark",
        "",
        f"GPU: {device_name()}; host: {platform.processor() or platform.machine()}",
        "",
        f"## Linear epoch, n = {n:,}, d = {d}, float32 ({epoch['bytes'] / 1e9:.2f} GB)",
        "",
        "| what | ms | x floor |",
        "|---|---|---|",
    ]
    floor = epoch.get("stream_torch")
    for key, label in (
        ("stream_peak", "stream X at the theoretical peak bandwidth"),
        ("stream_torch", f"stream X: PyTorch X.sum() ({epoch.get('stream_device')})"),
        ("epoch_kernels", "epoch kernels alone"),
        ("epoch_in_fit", "epoch inside fit (with the solver step)"),
    ):
        value = epoch.get(key)
        if value is None:
            continue
        ratio = f"{value / floor:.2f}" if floor else "-"
        lines.append(f"| {label} | {value * ms:.3f} | {ratio} |")
    lines += [
        "",
        f"## Linear fit, {config['linear_iter']} Adam iterations",
        "",
        '| device="cuda" s | device="cpu" s | PyTorch s | cpu / cuda | '
        "PyTorch / cuda |",
        "|---|---|---|---|---|",
    ]
    torch_fit = fit.get("torch")
    torch_s = "-" if torch_fit is None else f"{torch_fit:.3f}"
    torch_x = "-" if torch_fit is None else f"{torch_fit / fit['cuda']:.2f}"
    lines.append(
        f"| {fit['cuda']:.3f} | {fit['cpu']:.3f} | {torch_s} | "
        f"{fit['cpu'] / fit['cuda']:.2f} | {torch_x} |"
    )
    n, d, hidden, batch = config["mlp"]
    lines += [
        "",
        f"## MLP fit, n = {n:,}, d = {d}, hidden {hidden}, batch {batch}, "
        f"{config['mlp_epochs']} epochs",
        "",
        "| implementation | s | x ours |",
        "|---|---|---|",
        f'| AnyLossMLPClassifier device="cuda" (float64) | {mlp["cuda"]:.3f} | 1.00 |',
    ]
    for key in ("torch_float64", "torch_float32"):
        if key in mlp:
            lines.append(
                f"| PyTorch {key[6:]} ({mlp['torch_device']}) | {mlp[key]:.3f} | "
                f"{mlp[key] / mlp['cuda']:.2f} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes (smoke test)")
    parser.add_argument("--output", help="also write the results as JSON here")
    args = parser.parse_args()
    # Fixed iteration counts, on purpose.
    warnings.simplefilter("ignore", ConvergenceWarning)
    config = TINY if args.tiny else FULL
    resolve_device("cuda")  # a clear error, before any work, if there is no GPU
    for name, value in config.get("geometry", {}).items():
        setattr(cuda_kernels(), name, value)
    n, d = config["linear"]
    epoch = bench_linear_epoch(n, d, config["linear_iter"], config["repeats"])
    fit = bench_linear_fit(n, d, config["linear_iter"], config["repeats"])
    mlp = bench_mlp(*config["mlp"], config["mlp_epochs"], config["repeats"])
    print(report(config, epoch, fit, mlp))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(
                {"config": str(config), "epoch": epoch, "fit": fit, "mlp": mlp}, f
            )


if __name__ == "__main__":
    main()
