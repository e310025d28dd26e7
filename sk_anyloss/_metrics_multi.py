"""Metrics of several classes or labels, and their partial derivatives.

Two layouts of the (soft, weighted) counts reach a metric:

* **labels**, ``cms`` (4 L, flat): one binary confusion matrix ``[tn, fp, fn,
  tp]`` per label (a multilabel target; a binary target is one label). The
  metric is the binary metric of each label, averaged (:data:`AVERAGE_CODES`):
  ``"macro"`` the mean over labels, ``"weighted"`` the mean weighted by each
  label's true count (``fn + tp``), ``"micro"`` the metric of the summed
  matrices. (``"samples"``, the mean over samples of each sample's metric over
  its labels, is a matrix per sample: the backends apply the binary metric to
  each sample's row.)
* **matrix**, ``C`` (K, K): ``C[t, k]`` the count of samples of true class
  ``t`` assigned to class ``k``, as ``sklearn.metrics.confusion_matrix`` lays
  it out (a multiclass target).  Accuracy, balanced accuracy (the mean
  recall), MCC (Gorodkin's R_K), Cohen's kappa and G-mean (the geometric mean
  of the recalls) have one multiclass definition each (:data:`JOINT`).  The
  others, F1, F-beta, Jaccard, Fowlkes-Mallows and a user's function, are
  binary metrics averaged over the one-vs-rest matrices of the classes (class
  ``k`` positive: ``tp = C[k, k]``, ``fn = R_k - tp``, ``fp = P_k - tp``,
  with ``R``, ``P`` the row and column sums), the labels layout's averages,
  as ``sklearn.metrics`` computes them.

With hard 0/1 assignments the values are those of ``sklearn.metrics``
(``zero_division=0``) and imbalanced-learn's multiclass
``geometric_mean_score``: the tests check it.  Zero denominators follow the
binary metrics' rule (``_metrics.EPS``): value 0, finite partials.

Every function here is written once in plain Python and compiled by
:func:`build` with a backend's decorator and the metric's binary array form
(``binary(cm, scale, params, partials) -> value``, see ``_metrics.Metric``).
The counts are normalised to sum to one per matrix and ``scale`` is their
total weight; ``params`` is ``[beta, average code]``.  The caller passes
scratch space ``work`` (:func:`work_size` entries): CUDA device code cannot
allocate.
"""

import math

from numba import njit

from ._metrics import EPS

MACRO, MICRO, WEIGHTED, SAMPLES = 0, 1, 2, 3
AVERAGE_CODES = {
    "macro": MACRO,
    "micro": MICRO,
    "weighted": WEIGHTED,
    "samples": SAMPLES,
}

# The metrics with one multiclass definition, which ``average`` does not apply to.
JOINT = ("accuracy", "balanced_accuracy", "mcc", "cohen_kappa", "gmean")

# Slot of the average's code in a metric's parameters.
AVERAGE_SLOT = 1


# The two layouts.
LABELS, MATRIX = 0, 1


@njit
def work_size(layout, k):
    """Scratch entries a metric of ``k`` labels or classes needs in
    ``layout`` (from Python and from compiled code)."""
    return k + 8 if layout == LABELS else 11 * k + 8


def _source(jit, binary):
    @jit
    def den(x):
        return x if x > EPS else EPS

    @jit
    def sums(C, R, P):
        """Row sums into ``R``, column sums into ``P``; returns ``(n, trace)``."""
        K = C.shape[0]
        n = 0.0
        trace = 0.0
        for k in range(K):
            R[k] = 0.0
            P[k] = 0.0
        for t in range(K):
            for k in range(K):
                R[t] += C[t, k]
                P[k] += C[t, k]
            n += R[t]
            trace += C[t, t]
        return n, trace

    @jit
    def labels(cms, scale, params, partials, work):
        """The binary metric of each label's matrix ``cms[4 l : 4 l + 4]``,
        averaged; ``partials`` receives the derivatives with respect to
        ``cms`` (both flat, 4 L entries)."""
        L = cms.shape[0] // 4
        average = int(params[AVERAGE_SLOT])
        if average == MICRO:
            pooled = work[0:4]
            pooled_partials = work[4:8]
            for q in range(4):
                pooled[q] = 0.0
            for e in range(4 * L):
                pooled[e % 4] += cms[e]
            for q in range(4):
                pooled[q] /= L
            value = binary(pooled, scale * L, params, pooled_partials)
            for e in range(4 * L):
                partials[e] = pooled_partials[e % 4] / L
            return value
        values = work[8 : 8 + L]
        support = 0.0
        for lab in range(L):
            values[lab] = binary(
                cms[4 * lab : 4 * lab + 4],
                scale,
                params,
                partials[4 * lab : 4 * lab + 4],
            )
            support += cms[4 * lab + 2] + cms[4 * lab + 3]
        value = 0.0
        for lab in range(L):
            if average == WEIGHTED:
                weight = (cms[4 * lab + 2] + cms[4 * lab + 3]) / den(support)
            else:
                weight = 1.0 / L
            value += weight * values[lab]
            for q in range(4):
                partials[4 * lab + q] *= weight
        if average == WEIGHTED:
            # d weight_l / d (fn_m or tp_m) = (delta_lm - weight_l) / support
            for lab in range(L):
                extra = (values[lab] - value) / den(support)
                partials[4 * lab + 2] += extra
                partials[4 * lab + 3] += extra
        return value

    @jit
    def ovr(C, scale, params, D, work):
        """A binary metric averaged over the one-vs-rest matrices of ``C``."""
        K = C.shape[0]
        R = work[0:K]
        P = work[K : 2 * K]
        cms = work[2 * K : 6 * K]
        partials = work[6 * K : 10 * K]
        n, _ = sums(C, R, P)
        for k in range(K):
            tp = C[k, k]
            cms[4 * k] = max(n - R[k] - P[k] + tp, 0.0)
            cms[4 * k + 1] = max(P[k] - tp, 0.0)
            cms[4 * k + 2] = max(R[k] - tp, 0.0)
            cms[4 * k + 3] = tp
        value = labels(cms, scale, params, partials, work[10 * K :])
        # cm_k's cells as functions of C[t, j]: tn = n - R_k - P_k + tp,
        # fp = P_k - tp, fn = R_k - tp, tp = C[k, k].
        all_tn = 0.0
        for k in range(K):
            all_tn += partials[4 * k]
        for t in range(K):
            d_fn = partials[4 * t + 2] - partials[4 * t]
            for j in range(K):
                D[t, j] = all_tn + d_fn + (partials[4 * j + 1] - partials[4 * j])
            D[t, t] += (
                partials[4 * t + 3]
                - partials[4 * t + 1]
                - partials[4 * t + 2]
                + partials[4 * t]
            )
        return value

    @jit
    def accuracy(C, scale, params, D, work):
        K = C.shape[0]
        n, trace = sums(C, work[0:K], work[K : 2 * K])
        value = trace / den(n)
        for t in range(K):
            for k in range(K):
                D[t, k] = ((1.0 if t == k else 0.0) - value) / den(n)
        return value

    @jit
    def balanced_accuracy(C, scale, params, D, work):
        # The mean recall of the classes present (sklearn leaves out a class
        # with no true samples).
        K = C.shape[0]
        R = work[0:K]
        sums(C, R, work[K : 2 * K])
        present = 0.0
        total = 0.0
        for t in range(K):
            if R[t] > 0.0:
                present += 1.0
                total += C[t, t] / R[t]
        present = den(present)
        for t in range(K):
            recall = C[t, t] / R[t] if R[t] > 0.0 else 0.0
            for k in range(K):
                D[t, k] = (
                    ((1.0 if t == k else 0.0) - recall) / (R[t] * present)
                    if R[t] > 0.0
                    else 0.0
                )
        return total / present

    @jit
    def mcc(C, scale, params, D, work):
        # Gorodkin's R_K, as sklearn.metrics.matthews_corrcoef.
        K = C.shape[0]
        R = work[0:K]
        P = work[K : 2 * K]
        n, trace = sums(C, R, P)
        rp = 0.0
        pp = 0.0
        rr = 0.0
        for k in range(K):
            rp += R[k] * P[k]
            pp += P[k] * P[k]
            rr += R[k] * R[k]
        cov_tp = trace * n - rp
        cov_pp = n * n - pp
        cov_tt = n * n - rr
        s = den(math.sqrt(den(cov_pp) * den(cov_tt)))
        value = cov_tp / s
        for t in range(K):
            for k in range(K):
                d_tp = (n if t == k else 0.0) + trace - (P[t] + R[k])
                d_pp = 2.0 * (n - P[k])
                d_tt = 2.0 * (n - R[t])
                D[t, k] = d_tp / s - 0.5 * value * (
                    d_pp / den(cov_pp) + d_tt / den(cov_tt)
                )
        return value

    @jit
    def cohen_kappa(C, scale, params, D, work):
        K = C.shape[0]
        R = work[0:K]
        P = work[K : 2 * K]
        n, trace = sums(C, R, P)
        n = den(n)
        po = trace / n
        pe = 0.0
        for k in range(K):
            pe += R[k] * P[k]
        pe /= n * n
        q = den(1.0 - pe)
        value = (po - pe) / q
        for t in range(K):
            for k in range(K):
                d_po = ((1.0 if t == k else 0.0) - po) / n
                d_pe = (P[t] + R[k]) / (n * n) - 2.0 * pe / n
                D[t, k] = (d_po - (1.0 - value) * d_pe) / q
        return value

    @jit
    def gmean(C, scale, params, D, work):
        # The geometric mean of the recalls (imbalanced-learn's multiclass
        # G-mean); 0 if a recall is 0, with the partials of recalls clamped
        # at EPS there, finite.
        K = C.shape[0]
        R = work[0:K]
        sums(C, R, work[K : 2 * K])
        log_sum = 0.0
        zero = False
        for t in range(K):
            recall = C[t, t] / den(R[t])
            zero = zero or recall <= 0.0
            log_sum += math.log(den(recall))
        g = math.exp(log_sum / K)
        for t in range(K):
            recall = den(C[t, t] / den(R[t]))
            for k in range(K):
                d_recall = ((1.0 if t == k else 0.0) - recall) / den(R[t])
                D[t, k] = g / K * d_recall / recall
        return 0.0 if zero else g

    return {
        "labels": labels,
        "ovr": ovr,
        "accuracy": accuracy,
        "balanced_accuracy": balanced_accuracy,
        "mcc": mcc,
        "cohen_kappa": cohen_kappa,
        "gmean": gmean,
    }


def build(jit, binary, joint=None):
    """``(labels, matrix)``: the two layouts of a metric compiled with
    ``jit`` around its binary array form ``binary`` (compiled with ``jit``
    too); ``joint`` names its multiclass formula if it has one (``JOINT``),
    else the matrix layout averages ``binary`` over the classes."""
    forms = _source(jit, binary)
    return forms["labels"], forms[joint or "ovr"]
