"""The optimisers and the stopping rule, written once for every target.

Each rule is plain Python compiled by :func:`build` with the decorator a
target supplies: ``numba.njit`` inside the CPU training loops, a CUDA
device-function decorator inside the GPU kernels, and none for loops that run
on the host (the MLP's epochs). So the training loops of the package cannot
drift apart.

Settings travel as an :class:`Optimizer` record (an immutable tuple of codes
and floats, which Numba and numba.cuda take as an argument); the state an
optimiser carries from step to step, :class:`OptimizerState`, is arrays the
caller owns.
"""

import math
from typing import NamedTuple

import numpy as np

ADAM = 0
SGD = 1  # with momentum; plain gradient descent is momentum 0

SOLVER_CODES = {"adam": ADAM, "sgd": SGD}


class Optimizer(NamedTuple):
    """An optimiser's settings: ``solver`` is ``ADAM`` or ``SGD``."""

    solver: int
    learning_rate: float
    momentum: float
    beta_1: float
    beta_2: float
    epsilon: float


class OptimizerState(NamedTuple):
    """Adam's moments ``m``, ``v`` (``m`` is SGD's velocity) and the number
    of steps taken, ``steps[0]`` (Adam's bias correction counts them)."""

    m: np.ndarray
    v: np.ndarray
    steps: np.ndarray


def new_state(n_parameters):
    """A fresh :class:`OptimizerState` for ``n_parameters`` parameters."""
    return OptimizerState(
        np.zeros(n_parameters), np.zeros(n_parameters), np.zeros(1, dtype=np.int64)
    )


def _source(jit):
    @jit
    def step_size(opt, t):
        """The step of update ``t`` (1-based): Adam's bias-corrected rate."""
        if opt.solver == ADAM:
            return (
                opt.learning_rate
                * math.sqrt(1.0 - opt.beta_2**t)
                / (1.0 - opt.beta_1**t)
            )
        return opt.learning_rate

    @jit
    def update_at(opt, step, theta, grad, m, v, j):
        """Update parameter ``j`` in place; False if it became non-finite."""
        if opt.solver == ADAM:
            m[j] = opt.beta_1 * m[j] + (1.0 - opt.beta_1) * grad[j]
            v[j] = opt.beta_2 * v[j] + (1.0 - opt.beta_2) * grad[j] * grad[j]
            theta[j] -= step * m[j] / (math.sqrt(v[j]) + opt.epsilon)
        else:
            m[j] = opt.momentum * m[j] - opt.learning_rate * grad[j]
            theta[j] += m[j]
        return math.isfinite(theta[j])

    @jit
    def update(opt, theta, grad, state):
        """One step on every parameter; False if one became non-finite."""
        state.steps[0] += 1
        step = step_size(opt, state.steps[0])
        finite = True
        for j in range(theta.shape[0]):
            # ``&``, not ``and``: no branch in the loop, which then vectorises.
            finite &= update_at(opt, step, theta, grad, state.m, state.v, j)
        return finite

    @jit
    def track_best(loss, best, count, tol):
        """``(best, count)`` after an iteration with ``loss``.

        scikit-learn's rule (``MLPClassifier``, ``SGDClassifier``): ``count``
        is the number of iterations in a row whose loss was above the best so
        far minus ``tol``. Scores are tracked as negative losses.
        """
        count = count + 1 if loss > best - tol else 0
        return (loss if loss < best else best), count

    return step_size, update_at, update, track_best


def build(jit):
    """``(step_size, update_at, update, track_best)`` compiled with ``jit``."""
    return _source(jit)


def _identity(f):
    return f


# The host build, for the loops that run in Python.
step_size_py, update_at_py, update_py, track_best_py = build(_identity)
