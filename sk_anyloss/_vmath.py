"""An ``exp`` that compiled loops can vectorise, for the CPU kernels.

``math.exp`` in a Numba loop is a call to the C library's scalar ``exp``:
LLVM cannot vectorise a loop that contains it, and every amplified row calls
it twice.  :func:`exp_neg` is written in plain arithmetic (a Cody-Waite
reduction ``x = n ln 2 + r``, a degree-13 Taylor polynomial of ``exp(r)`` on
``|r| <= ln(2) / 2`` evaluated by Horner's rule, and the scale ``2**n`` put
together from its bits), with no call and no branch, so that a loop over an
array of arguments runs on SIMD lanes.

Accuracy (checked in ``tests/test_kernels_cpu.py``): within 1 ulp of the C
library's ``exp`` (1.2 ulp of the exact value), for ``-708 <= x <= 0`` in
float64 and ``-87 <= x <= 0`` in float32 (a float32 argument gives a float32
result, from a degree-7 polynomial); below those bounds it returns ``exp`` of
the bound (about ``3.3e-308`` and ``1.6e-38``) instead of a subnormal or zero,
an absolute error below ``4e-308`` and ``2e-38``.  Only ``x <= 0`` is
supported (every caller takes ``exp`` of a negative magnitude, so nothing
overflows).  The result does not depend on the
machine: the operations are fixed, and Numba does not fuse them (no
``fastmath``).

On the GPU the CUDA kernels keep ``math.exp`` (``_kernels_cuda`` swaps this
function for it), which is already vectorised in hardware.
"""

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

# ln 2 split so that n * LN2_HI is exact for |n| < 2**11 (LN2_HI has 11
# significant bits), and LN2_LO = ln 2 - LN2_HI to double precision.
LOG2E = 1.4426950408889634
LN2_HI = 0.693145751953125
LN2_LO = 1.4286068203094173e-06
# Arguments below this give a subnormal result; 2**n must stay a normal number.
LOWEST = -708.0
# float32: ln 2 = LN2_HI32 + LN2_LO32 (Cephes), and the lowest argument.
LOG2E32 = np.float32(LOG2E)
LN2_HI32 = np.float32(0.693359375)
LN2_LO32 = np.float32(-2.12194440e-4)
LOWEST32 = np.float32(-87.0)


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float64 (float32) whose IEEE-754 bit pattern is the int64 (int32)
    ``bits``."""
    if bits == types.int64:
        signature, target = types.float64(types.int64), ir.DoubleType()
    elif bits == types.int32:
        signature, target = types.float32(types.int32), ir.FloatType()
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], target)

    return signature, codegen


def exp_neg(x):
    """``exp(x)`` for ``x <= 0``, vectorisable in compiled loops, in the
    precision of ``x`` (float32 or float64; other numbers as float64); called
    from Python it is ``math.exp``."""
    return math.exp(x)


@overload(exp_neg)
def _exp_neg(x):
    if x == types.float32:
        return _exp_neg32
    if not isinstance(x, (types.Float, types.Integer)):
        return None

    def impl(x):
        x = float(x)
        x = LOWEST if x < LOWEST else x  # a NaN stays a NaN
        n = np.floor(x * LOG2E + 0.5)
        r = (x - n * LN2_HI) - n * LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        # 2**n from its bits (n = 0 for a NaN, whose p is a NaN already).
        k = np.int64(n) if n == n else np.int64(0)
        return p * _float_from_bits((k + 1023) << 52)

    return impl


def _exp_neg32(x):
    """float32 ``exp_neg``: the same steps, a degree-7 Taylor polynomial."""
    x = LOWEST32 if x < LOWEST32 else x
    n = np.float32(np.floor(x * LOG2E32 + np.float32(0.5)))
    r = (x - n * LN2_HI32) - n * LN2_LO32
    p = np.float32(1.0 / 5040.0)
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)
    k = np.int64(n) if n == n else np.int64(0)
    return p * _float_from_bits(np.int32((k + 127) << 23))
