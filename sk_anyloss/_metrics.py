"""Confusion-matrix metrics and their analytic partial derivatives.

Conventions used throughout the package:

* the confusion matrix is always passed in the order ``(tn, fp, fn, tp)``;
  entries are (soft, weighted) sums and need not be integers;
* every metric returns a tuple ``(value, d_tn, d_fp, d_fn, d_tp)``: the metric
  and its four partial derivatives;
* the training loss is ``1 - value``.

Each formula is written once, in plain Python, and compiled by
:func:`build_metric_function` with whatever decorator a backend supplies
(``numba.njit`` for the CPU, a CUDA device-function decorator for the GPU), so
the backends cannot drift apart.

Zero denominators (no positives, no predicted positives, ...) are handled with
one rule: a denominator is clamped from below at ``EPS``.  Wherever a
denominator is zero its numerator is zero too, so the value there is 0 (what
``sklearn.metrics`` returns with ``zero_division=0``) and the partials are
finite.  Away from those points the clamp is inactive: with the sample weights
normalised to sum to one (see ``_base``), the sums are far above ``EPS``.
"""

import math

import numpy as np

# One epsilon for every zero-denominator guard in the package.
EPS = 1e-15

# name -> integer code understood by the compiled kernels.  The order is part of
# the kernels' interface: append only.
METRIC_CODES = {
    "accuracy": 0,
    "balanced_accuracy": 1,
    "f1": 2,
    "fbeta": 3,
    "gmean": 4,
    "mcc": 5,
    "jaccard": 6,
    "cohen_kappa": 7,
    "fowlkes_mallows": 8,
}
METRIC_NAMES = tuple(METRIC_CODES)


def metric_code(name):
    """Integer code of a metric name, with an error listing the valid names."""
    try:
        return METRIC_CODES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown metric {name!r}. Valid metrics are: {', '.join(METRIC_NAMES)}."
        ) from None


def _source(jit):
    """Define every metric with ``jit`` and return the dispatch function."""

    @jit
    def den(x):
        return x if x > EPS else EPS

    @jit
    def accuracy(tn, fp, fn, tp, beta):
        d = den(tn + fp + fn + tp)
        right = tp + tn
        wrong = fp + fn
        value = right / d
        d2 = d * d
        return value, wrong / d2, -right / d2, -right / d2, wrong / d2

    @jit
    def balanced_accuracy(tn, fp, fn, tp, beta):
        p = den(tp + fn)
        n = den(tn + fp)
        value = 0.5 * (tp / p + tn / n)
        return (
            value,
            0.5 * fp / (n * n),
            -0.5 * tn / (n * n),
            -0.5 * tp / (p * p),
            0.5 * fn / (p * p),
        )

    @jit
    def fbeta(tn, fp, fn, tp, beta):
        b2 = beta * beta
        c = 1.0 + b2
        d = den(c * tp + b2 * fn + fp)
        value = c * tp / d
        d2 = d * d
        return value, 0.0, -c * tp / d2, -c * b2 * tp / d2, c * (b2 * fn + fp) / d2

    @jit
    def f1(tn, fp, fn, tp, beta):
        return fbeta(tn, fp, fn, tp, 1.0)

    @jit
    def gmean(tn, fp, fn, tp, beta):
        p = den(tp + fn)
        n = den(tn + fp)
        tpr = tp / p
        tnr = tn / n
        value = math.sqrt(tpr * tnr)
        half = 0.5 / den(value)
        return (
            value,
            half * tpr * fp / (n * n),
            -half * tpr * tn / (n * n),
            -half * tnr * tp / (p * p),
            half * tnr * fn / (p * p),
        )

    @jit
    def mcc(tn, fp, fn, tp, beta):
        pp = den(tp + fp)
        ap = den(tp + fn)
        an = den(tn + fp)
        pn = den(tn + fn)
        s = den(math.sqrt(pp * ap * an * pn))
        value = (tp * tn - fp * fn) / s
        # d value = d(numerator) / s - value / 2 * d log(product)
        hv = 0.5 * value
        return (
            value,
            tp / s - hv * (1.0 / an + 1.0 / pn),
            -fn / s - hv * (1.0 / pp + 1.0 / an),
            -fp / s - hv * (1.0 / ap + 1.0 / pn),
            tn / s - hv * (1.0 / pp + 1.0 / ap),
        )

    @jit
    def jaccard(tn, fp, fn, tp, beta):
        d = den(tp + fp + fn)
        value = tp / d
        d2 = d * d
        return value, 0.0, -tp / d2, -tp / d2, (fp + fn) / d2

    @jit
    def cohen_kappa(tn, fp, fn, tp, beta):
        num = 2.0 * (tp * tn - fn * fp)
        d = den((tp + fp) * (fp + tn) + (tp + fn) * (fn + tn))
        value = num / d
        return (
            value,
            (2.0 * tp - value * (2.0 * tp + fp + fn)) / d,
            (-2.0 * fn - value * (2.0 * fp + tp + tn)) / d,
            (-2.0 * fp - value * (2.0 * fn + tp + tn)) / d,
            (2.0 * tn - value * (2.0 * tn + fp + fn)) / d,
        )

    @jit
    def fowlkes_mallows(tn, fp, fn, tp, beta):
        pp = den(tp + fp)
        ap = den(tp + fn)
        s = den(math.sqrt(pp * ap))
        value = tp / s
        hv = 0.5 * value
        return value, 0.0, -hv / pp, -hv / ap, 1.0 / s - hv * (1.0 / pp + 1.0 / ap)

    @jit
    def metric_and_partials(code, tn, fp, fn, tp, beta):
        if code == 0:
            return accuracy(tn, fp, fn, tp, beta)
        elif code == 1:
            return balanced_accuracy(tn, fp, fn, tp, beta)
        elif code == 2:
            return f1(tn, fp, fn, tp, beta)
        elif code == 3:
            return fbeta(tn, fp, fn, tp, beta)
        elif code == 4:
            return gmean(tn, fp, fn, tp, beta)
        elif code == 5:
            return mcc(tn, fp, fn, tp, beta)
        elif code == 6:
            return jaccard(tn, fp, fn, tp, beta)
        elif code == 7:
            return cohen_kappa(tn, fp, fn, tp, beta)
        else:
            return fowlkes_mallows(tn, fp, fn, tp, beta)

    return metric_and_partials


def build_metric_function(jit):
    """Compile the registry with ``jit``.

    Returns ``metric_and_partials(code, tn, fp, fn, tp, beta)``, which gives
    ``(value, d_tn, d_fp, d_fn, d_tp)`` for the metric of integer ``code``.
    """
    return _source(jit)


def _identity(f):
    return f


# Plain-Python build: the reference implementation and a convenience for tests.
metric_and_partials_py = build_metric_function(_identity)


def metric_value(name, tn, fp, fn, tp, beta=1.0):
    """Value of metric ``name`` on a confusion matrix (plain Python)."""
    return metric_and_partials_py(metric_code(name), tn, fp, fn, tp, beta)[0]


def confusion_sums(y01, a, sample_weight=None):
    """Soft confusion matrix ``(tn, fp, fn, tp)`` of scores ``a`` in [0, 1]."""
    y01 = np.asarray(y01, dtype=bool)
    a = np.asarray(a, dtype=np.float64)
    s = np.ones_like(a) if sample_weight is None else np.asarray(sample_weight, float)
    tp = float(np.sum(s[y01] * a[y01]))
    fp = float(np.sum(s[~y01] * a[~y01]))
    return float(np.sum(s[~y01])) - fp, fp, float(np.sum(s[y01])) - tp, tp


def score_labels(y_true, y_pred, *, metric, beta=1.0, sample_weight=None):
    """Metric ``metric`` of hard 0/1 predictions (1 = the positive class)."""
    return metric_value(metric, *confusion_sums(y_true, y_pred, sample_weight), beta)
