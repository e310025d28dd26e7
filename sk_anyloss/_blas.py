"""Matrix products for the compiled kernels: BLAS called directly.

The kernels' products (the scores of a block of rows, ``W X_b^T``; the
class-wise sums, ``H X_b``; the MLP's layers) are BLAS's, as ``np.dot`` would
make them, but ``np.dot`` in a Numba kernel compiles Numba's whole
implementation of it (its shape, layout and type checks, its copies of
non-contiguous operands, its error messages) once per combination of operand
kinds: that was a second of a cold first fit, for three products.  Here a
product is one call of SciPy's BLAS (``scipy.linalg.cython_blas``, the library
``np.dot`` uses in a kernel too), emitted as a call to a named symbol that is
registered with LLVM when this module is imported, so that kernels that use
it stay cacheable (a function pointer written into the code as a constant
would not survive the next process).

The operands are C-contiguous arrays of one floating type (float64 or
float32), checked when a kernel compiles; their shapes are not checked at run
time: the callers (private kernels) own them, and ``tests/test_blas.py``
checks every shape class against ``np.dot``.  BLAS's integers are 32-bit:
every dimension here is at most a chunk of rows, a batch or a layer's width.
"""

import ctypes

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic
from scipy.linalg import cython_blas

_PREFIX = "sk_anyloss_blas_"


def _capsule_address(capsule):
    """The C function pointer held by a Cython ``__pyx_capi__`` capsule."""
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


for _name in ("dgemm", "sgemm", "dgemv", "sgemv", "ddot", "sdot"):
    llvm.add_symbol(_PREFIX + _name, _capsule_address(cython_blas.__pyx_capi__[_name]))

_TRANSPOSE = {False: ord("N"), True: ord("T")}


def _float_kind(*arrays):
    """``"d"`` or ``"s"`` for C-contiguous arrays of one floating type."""
    dtypes = {a.dtype for a in arrays}
    if any(not isinstance(a, types.Array) or a.layout != "C" for a in arrays):
        raise TypingError("BLAS operands must be C-contiguous arrays")
    if dtypes == {types.float64}:
        return "d"
    if dtypes == {types.float32}:
        return "s"
    raise TypingError(f"BLAS operands must share float64 or float32, got {dtypes}")


def _emit_call(context, builder, name, values, result=None):
    """Call BLAS routine ``name`` with every argument by address (Fortran's
    convention): ``values`` are LLVM values, each stored in a stack slot;
    ``result`` is the LLVM type it returns (None: void)."""
    byte_ptr = ir.IntType(8).as_pointer()
    fnty = ir.FunctionType(result or ir.VoidType(), [byte_ptr] * len(values))
    fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFIX + name)
    args = []
    for value in values:
        if isinstance(value.type, ir.PointerType):
            args.append(builder.bitcast(value, byte_ptr))
        else:
            slot = cgutils.alloca_once_value(builder, value)
            args.append(builder.bitcast(slot, byte_ptr))
    return builder.call(fn, args)


def _data(context, builder, ty, value):
    return context.make_array(ty)(context, builder, value).data


def _int32(context, builder, ty, value):
    return context.cast(builder, value, ty, types.int32)


@intrinsic
def _gemm(typingctx, trans_a, trans_b, m, n, k, A, lda, B, ldb, beta, C, ldc):
    """Fortran ``xgemm(trans_a, trans_b, m, n, k, 1, A, lda, B, ldb, beta, C,
    ldc)``: column-major ``C = op(A) op(B) + beta C``; ``trans_a`` and
    ``trans_b`` are literal booleans."""
    kind = _float_kind(A, B, C)
    if not all(isinstance(t, types.BooleanLiteral) for t in (trans_a, trans_b)):
        raise TypingError("the transposition flags must be literal booleans")
    flags = (_TRANSPOSE[trans_a.literal_value], _TRANSPOSE[trans_b.literal_value])
    sig = types.void(trans_a, trans_b, m, n, k, A, lda, B, ldb, beta, C, ldc)

    def codegen(context, builder, sig, args):
        ty = sig.args
        real = context.get_value_type(A.dtype)
        char = ir.IntType(8)
        values = [
            ir.Constant(char, flags[0]),
            ir.Constant(char, flags[1]),
            *(_int32(context, builder, ty[i], args[i]) for i in (2, 3, 4)),
            ir.Constant(real, 1.0),
            _data(context, builder, ty[5], args[5]),
            _int32(context, builder, ty[6], args[6]),
            _data(context, builder, ty[7], args[7]),
            _int32(context, builder, ty[8], args[8]),
            context.cast(builder, args[9], ty[9], A.dtype),
            _data(context, builder, ty[10], args[10]),
            _int32(context, builder, ty[11], args[11]),
        ]
        _emit_call(context, builder, kind + "gemm", values)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _gemv(typingctx, trans, m, n, A, lda, x, y):
    """Fortran ``xgemv(trans, m, n, 1, A, lda, x, 1, 0, y, 1)``: ``y = op(A)
    x`` for the column-major ``m x n`` matrix ``A``; ``trans`` is a literal
    boolean."""
    kind = _float_kind(A, x, y)
    if not isinstance(trans, types.BooleanLiteral):
        raise TypingError("the transposition flag must be a literal boolean")
    flag = _TRANSPOSE[trans.literal_value]
    sig = types.void(trans, m, n, A, lda, x, y)

    def codegen(context, builder, sig, args):
        ty = sig.args
        real = context.get_value_type(A.dtype)
        one = ir.Constant(ir.IntType(32), 1)
        values = [
            ir.Constant(ir.IntType(8), flag),
            _int32(context, builder, ty[1], args[1]),
            _int32(context, builder, ty[2], args[2]),
            ir.Constant(real, 1.0),
            _data(context, builder, ty[3], args[3]),
            _int32(context, builder, ty[4], args[4]),
            _data(context, builder, ty[5], args[5]),
            one,
            ir.Constant(real, 0.0),
            _data(context, builder, ty[6], args[6]),
            one,
        ]
        _emit_call(context, builder, kind + "gemv", values)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _dot(typingctx, n, x, y):
    """Fortran ``xdot(n, x, 1, y, 1)``: ``sum x[i] y[i]``."""
    kind = _float_kind(x, y)
    sig = x.dtype(n, x, y)

    def codegen(context, builder, sig, args):
        ty = sig.args
        one = ir.Constant(ir.IntType(32), 1)
        values = [
            _int32(context, builder, ty[0], args[0]),
            _data(context, builder, ty[1], args[1]),
            one,
            _data(context, builder, ty[2], args[2]),
            one,
        ]
        real = context.get_value_type(x.dtype)
        return _emit_call(context, builder, kind + "dot", values, real)

    return sig, codegen


# The products below call BLAS as Numba's ``np.dot`` does, routine for
# routine (numba/np/linalg.py): a product whose left operand is one row or
# whose right operand is one column is a matrix-vector product (both: a dot
# product), which for one row or column OpenBLAS's matrix product runs 4x
# slower; and the same routine, with the same arguments, gives the same
# bits as before.


@njit(inline="always")
def matmul_nt(A, B, out):
    """``out = A B^T`` for C-contiguous ``A`` (m x k), ``B`` (n x k) and
    ``out`` (m x n): ``np.dot(A, B.T)``."""
    m, k = A.shape
    n = B.shape[0]
    if m == 0 or n == 0:
        return
    if k == 0:
        out[:] = 0
    elif m == 1 and n == 1:
        out[0, 0] = _dot(k, A, B)
    elif n == 1:  # column-major, A is k x m: out = A^T b
        _gemv(True, k, m, A, k, B, out)
    elif m == 1:  # column-major, B is k x n: out = B^T a
        _gemv(True, k, n, B, k, A, out)
    else:  # row-major out = A B^T is column-major out^T = B A^T
        _gemm(True, False, n, m, k, B, k, A, k, 0.0, out, n)


@njit(inline="always")
def matmul(A, B, out):
    """``out = A B`` for C-contiguous ``A`` (m x k), ``B`` (k x n) and
    ``out`` (m x n): ``np.dot(A, B)``."""
    m, k = A.shape
    n = B.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        out[:] = 0
    elif m == 1 and n == 1:
        out[0, 0] = _dot(k, A, B)
    elif n == 1:  # column-major, A is k x m: out = A^T b
        _gemv(True, k, m, A, k, B, out)
    elif m == 1:  # column-major, B is n x k: out = B a
        _gemv(False, n, k, B, n, A, out)
    else:  # row-major out = A B is column-major out^T = B^T A^T
        _gemm(False, False, n, m, k, B, n, A, k, 0.0, out, n)


@njit(inline="always")
def matmul_tn(A, B, out):
    """``out = A^T B`` for C-contiguous ``A`` (k x m), ``B`` (k x n) and
    ``out`` (m x n): ``np.dot(A.T, B)``."""
    k, m = A.shape
    n = B.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        out[:] = 0
    elif m == 1 and n == 1:
        out[0, 0] = _dot(k, A, B)
    elif n == 1:  # column-major, A is m x k: out = A b
        _gemv(False, m, k, A, m, B, out)
    elif m == 1:  # column-major, B is n x k: out = B a
        _gemv(False, n, k, B, n, A, out)
    else:  # row-major out = A^T B is column-major out^T = B^T A
        _gemm(False, True, n, m, k, B, n, A, m, 0.0, out, n)


@njit(inline="always")
def vecmat(x, B, out):
    """``out = x B`` for C-contiguous ``x`` (k), ``B`` (k x n), ``out`` (n):
    ``np.dot(x, B)``."""
    k, n = B.shape
    if n == 0:
        return
    if k == 0:
        out[:] = 0
    else:  # column-major, B is n x k: out = B x
        _gemv(False, n, k, B, n, x, out)
