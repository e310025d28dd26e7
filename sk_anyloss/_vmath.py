"""An ``exp`` that compiled loops can vectorise, for the CPU kernels.

``math.exp`` in a Numba loop is a call to the C library's scalar ``exp``:
LLVM cannot vectorise a loop that contains it, and every amplified row calls
it twice.  :func:`exp_neg` is written in plain arithmetic, with no call and
no branch, so that a loop over an array of arguments runs on SIMD lanes:

- the reduction ``x = n ln 2 + r`` (Cody-Waite, ``ln 2`` in two parts) takes
  ``n``, the integer nearest ``x / ln 2``, from the low bits of
  ``x log2(e) + SHIFT`` (``SHIFT = 1.5 * 2**52`` plus the exponent bias, so
  the sum's last bits are ``n`` plus the bias): no conversion from float to
  integer, which AVX2 has no vector instruction for;
- ``exp(r)`` on ``|r| <= ln(2) / 2`` is a degree-13 Taylor polynomial
  (float64) evaluated as ``1 + (r + r^2 q(r))`` with ``q`` in Estrin's
  scheme (pairs of terms, then powers ``r^2``, ``r^4``, ``r^6``), so that
  the lanes do not wait on one long chain of products as in Horner's rule;
  float32 uses a degree-7 polynomial by Horner's rule (short enough);
- the scale ``2**n`` is those same low bits shifted into the exponent field.

Accuracy (checked in ``tests/test_kernels_cpu.py``): within 1 ulp of the C
library's ``exp`` (1.2 ulp of the exact value), for ``-708 <= x <= 0`` in
float64 and ``-87 <= x <= 0`` in float32 (a float32 argument gives a float32
result); below those bounds it returns ``exp`` of the bound (about
``3.3e-308`` and ``1.6e-38``) instead of a subnormal or zero, an absolute
error below ``4e-308`` and ``2e-38``.  Only ``x <= 0`` is supported (every
caller takes ``exp`` of a negative magnitude, so nothing overflows).  The
result does not depend on the machine: the operations are fixed, and Numba
does not fuse them (no ``fastmath``).

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
# x log2(e) + SHIFT rounds x log2(e) to the nearest integer n, held in the
# sum's last bits as n + 1023 (1.5 * 2**52 keeps the sum in one binade for
# |n| < 2**51); shifted left by 52 those bits are 2**n's.
SHIFT = 6755399441055744.0 + 1023.0
# float32: ln 2 = LN2_HI32 + LN2_LO32 (Cephes), the lowest argument, and the
# shift (1.5 * 2**23 plus the bias 127; 2**n is the last bits shifted by 23).
LOG2E32 = np.float32(LOG2E)
LN2_HI32 = np.float32(0.693359375)
LN2_LO32 = np.float32(-2.12194440e-4)
LOWEST32 = np.float32(-87.0)
SHIFT32 = np.float32(12582912.0 + 127.0)
# The Taylor coefficients 1/k!.
_C = [1.0 / math.factorial(k) for k in range(14)]
_C32 = [np.float32(c) for c in _C[:8]]


@intrinsic
def _bits(typingctx, x):
    """The int64 (int32) whose bits are those of the float64 (float32)
    ``x``."""
    if x == types.float64:
        signature, target = types.int64(types.float64), ir.IntType(64)
    elif x == types.float32:
        signature, target = types.int32(types.float32), ir.IntType(32)
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], target)

    return signature, codegen


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

    c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13 = _C[2:]

    def impl(x):
        x = float(x)
        x = LOWEST if x < LOWEST else x  # a NaN stays a NaN
        t = x * LOG2E + SHIFT
        n = t - SHIFT
        r = (x - n * LN2_HI) - n * LN2_LO
        r2 = r * r
        r4 = r2 * r2
        s0 = c2 + c3 * r
        s1 = (c4 + c5 * r) + (c6 + c7 * r) * r2
        s2 = (c8 + c9 * r) + (c10 + c11 * r) * r2
        s3 = c12 + c13 * r
        q = (s0 + s1 * r2) + (s2 + s3 * r4) * (r4 * r2)
        p = 1.0 + (r + r2 * q)
        # 2**n from the last bits of t (a NaN's p is a NaN already).
        return p * _float_from_bits(_bits(t) << 52)

    return impl


_f0, _f1, _f2, _f3, _f4, _f5, _f6, _f7 = _C32


def _exp_neg32(x):
    """float32 ``exp_neg``: the same steps, a degree-7 polynomial by Horner's
    rule."""
    x = LOWEST32 if x < LOWEST32 else x
    t = x * LOG2E32 + SHIFT32
    n = t - SHIFT32
    r = (x - n * LN2_HI32) - n * LN2_LO32
    p = _f7
    p = p * r + _f6
    p = p * r + _f5
    p = p * r + _f4
    p = p * r + _f3
    p = p * r + _f2
    p = p * r + _f1
    p = p * r + _f0
    return p * _float_from_bits(np.int32(_bits(t) << 23))
