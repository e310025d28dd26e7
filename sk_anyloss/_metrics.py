"""Confusion-matrix metrics and their analytic partial derivatives.

Conventions used throughout the package:

* the confusion matrix is always passed in the order ``(tn, fp, fn, tp)``;
  entries are (soft, weighted) sums and need not be integers;
* every metric returns a tuple ``(value, d_tn, d_fp, d_fn, d_tp)``: the metric
  and its four partial derivatives;
* the training loss is ``1 - value``.

Each formula is written once, in plain Python, and compiled by
:func:`build_formulas` with whatever decorator a backend supplies
(``numba.njit`` for the CPU, a CUDA device-function decorator for the GPU), so
the backends cannot drift apart. The training loops take a metric as a
:class:`Metric`, which each backend compiles into the form it calls: the
loops themselves are compiled once, whatever the metric.

Zero denominators (no positives, no predicted positives, ...) are handled with
one rule: a denominator is clamped from below at ``EPS``.  Wherever a
denominator is zero its numerator is zero too, so the value there is 0 (what
``sklearn.metrics`` returns with ``zero_division=0``) and the partials are
finite.  Away from those points the clamp is inactive: with the sample weights
normalised to sum to one (see the backends), the sums are far above ``EPS``.
"""

import copy
import functools
import math
import threading
import types
import weakref

import numpy as np

# One epsilon for every zero-denominator guard in the package.
EPS = 1e-15

METRIC_NAMES = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "fbeta",
    "gmean",
    "mcc",
    "jaccard",
    "cohen_kappa",
    "fowlkes_mallows",
)


def check_metric_name(name):
    """``name`` if it is a metric's name; else a ``ValueError`` listing them."""
    if not (isinstance(name, str) and name in METRIC_NAMES):
        raise ValueError(
            f"Unknown metric {name!r}. Valid metrics are: {', '.join(METRIC_NAMES)}."
        )
    return name


def _source(jit):
    """Define every metric with ``jit``; ``{name: formula}``."""

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

    return {
        "accuracy": accuracy,
        "balanced_accuracy": balanced_accuracy,
        "f1": f1,
        "fbeta": fbeta,
        "gmean": gmean,
        "mcc": mcc,
        "jaccard": jaccard,
        "cohen_kappa": cohen_kappa,
        "fowlkes_mallows": fowlkes_mallows,
    }


def build_formulas(jit):
    """Every metric compiled with ``jit``: ``{name: formula}``, each
    ``formula(tn, fp, fn, tp, beta)`` giving ``(value, d_tn, d_fp, d_fn, d_tp)``.
    """
    return _source(jit)


def _identity(f):
    return f


# Plain-Python build: the host's values, and a convenience for tests.
FORMULAS = build_formulas(_identity)


def metric_and_partials_py(name, tn, fp, fn, tp, beta=1.0):
    """``(value, d_tn, d_fp, d_fn, d_tp)`` of metric ``name`` (plain Python)."""
    return FORMULAS[check_metric_name(name)](tn, fp, fn, tp, beta)


def metric_value(name, tn, fp, fn, tp, beta=1.0):
    """Value of metric ``name`` on a confusion matrix (plain Python)."""
    return metric_and_partials_py(name, tn, fp, fn, tp, beta)[0]


def _array_form(cm, scale, params, partials):
    # ``formula`` is a global of each build (see Metric.array_form); the
    # built-in metrics do not depend on the matrix's scale.
    value, partials[0], partials[1], partials[2], partials[3] = formula(  # noqa: F821
        cm[0], cm[1], cm[2], cm[3], params[0]
    )
    return value


class Metric:
    """A metric as the training loops take it, resolved from the estimator's
    ``metric``, ``beta`` and ``average``.

    The loops see it in *array form*, ``value = metric(cm, scale, params,
    partials)``: ``cm`` the confusion matrix ``[tn, fp, fn, tp]`` normalised
    to sum to one, ``scale`` its total weight, ``params`` the metric's
    parameters (``[beta, average code]``), ``partials`` receiving the four
    partial derivatives with respect to ``cm``; and in the two layouts of
    several labels or classes that ``_metrics_multi`` builds around it
    (:meth:`forms`). Each target compiles them with its own decorator; ``key``
    names the metric in the targets' caches of compiled code, so that each
    metric is compiled once per process (and, where ``cacheable``, kept in
    Numba's cache on disk): ``beta`` and ``average`` are data, not code.
    """

    cacheable = True

    def __init__(self, name, beta=1.0, average=None):
        from ._metrics_multi import AVERAGE_CODES, JOINT

        self.name = check_metric_name(name)
        self.key = name
        self.joint = name in JOINT
        self.average = average
        self.params = np.array([float(beta), float(AVERAGE_CODES[average or "macro"])])

    def with_average(self, average):
        """The same metric averaged by ``average`` (None: the binary metric of
        the positive class, or ``"macro"`` over several)."""
        from ._metrics_multi import AVERAGE_CODES, AVERAGE_SLOT

        other = copy.copy(self)
        other.average = average
        other.params = self.params.copy()
        other.params[AVERAGE_SLOT] = AVERAGE_CODES[average or "macro"]
        return other

    def array_form(self, jit, qualname, inner=None):
        """The array form compiled with ``jit`` under ``qualname`` (Numba's
        on-disk cache tells functions apart by their qualified names); the
        functions it calls are compiled with ``inner`` (``jit`` by default)."""
        env = dict(_array_form.__globals__)
        env["formula"] = build_formulas(inner or jit)[self.name]
        fn = types.FunctionType(_array_form.__code__, env, qualname)
        fn.__qualname__ = qualname
        return jit(fn)

    def forms(self, jit, qualname, array_form=None):
        """``(labels, matrix)``: the metric of several labels and of a
        multiclass matrix (``_metrics_multi``), compiled with ``jit``, around
        ``array_form`` (by default the array form compiled with ``jit``)."""
        from ._metrics_multi import build

        if array_form is None:
            array_form = self.array_form(jit, qualname)
        return build(jit, array_form, self.name if self.joint else None)

    def value(self, tn, fp, fn, tp):
        """The metric of a confusion matrix (plain Python)."""
        return FORMULAS[self.name](tn, fp, fn, tp, self.params[0])[0]

    def labels_value(self, cms):
        """The averaged metric of per-label matrices ``cms`` (L, 4) of
        counts (plain Python)."""
        from ._metrics_multi import LABELS, work_size

        cms = np.asarray(cms, dtype=np.float64)
        scale = float(cms[0].sum())
        labels, _ = _python_forms(self)
        return self._finite(labels(
            (cms / max(scale, EPS)).ravel(), scale, self.params,
            np.empty(cms.size), np.empty(work_size(LABELS, cms.shape[0])),
        ))  # fmt: skip

    def matrix_value(self, C):
        """The metric of a multiclass confusion matrix ``C`` of counts (plain
        Python)."""
        from ._metrics_multi import MATRIX, work_size

        C = np.asarray(C, dtype=np.float64)
        scale = float(C.sum())
        _, matrix = _python_forms(self)
        return self._finite(matrix(
            C / max(scale, EPS), scale, self.params, np.empty(C.shape),
            np.empty(work_size(MATRIX, C.shape[0])),
        ))  # fmt: skip

    def of_predictions(self, kind, Y_true, Y_pred, sample_weight=None):
        """The metric of hard predictions of a ``kind`` target (see
        ``_base.Problem``), both as 0/1 outputs (n, n_outputs): the metric
        training optimises, of the decision rule's predictions."""
        Y_true = np.asarray(Y_true, dtype=np.float64)
        Y_pred = np.asarray(Y_pred, dtype=np.float64)
        n = Y_true.shape[0]
        s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
        if kind == "multiclass":
            return self.matrix_value((Y_true * s[:, None]).T @ Y_pred)
        if kind == "multilabel" and self.average == "samples":
            tp = np.sum(Y_true * Y_pred, axis=1)
            fp = np.sum((1.0 - Y_true) * Y_pred, axis=1)
            fn = np.sum(Y_true * (1.0 - Y_pred), axis=1)
            tn = Y_true.shape[1] - tp - fp - fn
            values = [self.value(*cm) for cm in zip(tn, fp, fn, tp)]
            return float(np.dot(values, s) / s.sum())
        tp = s @ (Y_true * Y_pred)
        fp = s @ ((1.0 - Y_true) * Y_pred)
        fn = s @ (Y_true * (1.0 - Y_pred))
        tn = s.sum() - tp - fp - fn
        cms = np.column_stack([tn, fp, fn, tp])
        if kind == "binary" and self.average is not None:
            return self.matrix_value(cms.reshape(2, 2))
        return self.labels_value(cms)

    def _finite(self, value):
        if not math.isfinite(value):
            raise ValueError(f"The metric {self.name} is not finite here: {value}.")
        return float(value)

    def check(self, scale, positive_share=0.5):
        """Raise a ``ValueError`` if the metric cannot be trained on with
        counts of total weight ``scale`` and a share ``positive_share`` of
        positives (the built-in ones always can)."""

    def __eq__(self, other):
        return isinstance(other, Metric) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


@functools.cache
def _python_forms(metric):
    return metric.forms(_identity, f"python_metric_{metric.key}")


# function -> {fingerprint: UserMetric}, the traces of each user's function
# (a few, for globals that alternate between values).
_USER_METRICS = weakref.WeakKeyDictionary()
_TRACES_PER_FUNCTION = 8
_USER_LOCK = threading.RLock()


def resolve_metric(metric, beta=1.0, average=None):
    """The :class:`Metric` of an estimator's ``metric`` parameter: a name of
    ``METRIC_NAMES`` or a user's function of ``(tn, fp, fn, tp)`` (read and
    differentiated once per process, function and values of the globals it
    reads, see ``_user_metric.fingerprint``), averaged by ``average`` over
    several classes or labels."""
    if not callable(metric):
        return Metric(metric, beta, average)
    from ._user_metric import UserMetric, fingerprint

    with _USER_LOCK:  # one trace (and one compilation) per key, not per thread
        if not isinstance(metric, types.FunctionType):
            user = UserMetric(metric)  # raises the error that says why
        else:
            key = fingerprint(metric)
            traces = _USER_METRICS.setdefault(metric, {})
            user = traces.get(key)
            if user is None:
                user = UserMetric(metric)
                # Keyed by the values after the trace (which ran the function).
                traces[fingerprint(metric)] = user
                while len(traces) > _TRACES_PER_FUNCTION:
                    del traces[next(iter(traces))]
    return user if average is None else user.with_average(average)


def confusion_sums(y01, a, sample_weight=None):
    """Soft confusion matrix ``(tn, fp, fn, tp)`` of scores ``a`` in [0, 1]."""
    y01 = np.asarray(y01, dtype=bool)
    a = np.asarray(a, dtype=np.float64)
    s = np.ones_like(a) if sample_weight is None else np.asarray(sample_weight, float)
    tp = float(np.sum(s[y01] * a[y01]))
    fp = float(np.sum(s[~y01] * a[~y01]))
    return float(np.sum(s[~y01])) - fp, fp, float(np.sum(s[y01])) - tp, tp


def score_labels(y_true, y_pred, *, metric, beta=1.0, sample_weight=None):
    """Metric ``metric`` (a name, a function or a :class:`Metric`) of hard
    0/1 predictions (1 = the positive class), from the weighted counts."""
    cm = confusion_sums(y_true, y_pred, sample_weight)
    if isinstance(metric, str):
        return metric_value(metric, *cm, beta)
    if not isinstance(metric, Metric):
        metric = resolve_metric(metric, beta)
    return metric.value(*cm)
