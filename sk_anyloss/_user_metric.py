"""Users' own metrics: a Python function of the confusion matrix, trained on.

``metric=f`` with ``f(tn, fp, fn, tp) -> float``, written with arithmetic,
comparisons, ``if`` statements, ``min``, ``max``, ``abs`` and ``math`` or
NumPy functions. The package derives the partial derivatives itself, exactly
(to rounding), with no source code needed:

1. **Tracing.** The function runs on symbolic arguments (:class:`_Symbol`):
   every operation records a node of an expression graph instead of a
   number (``math``'s functions are swapped for symbolic ones; NumPy's and
   the builtins work on the symbols as they are). Each comparison is a
   branch: the function is run once per combination of the branches it takes
   (:func:`_trace`), which gives a decision tree of comparisons with an
   expression at each leaf.
2. **Forward-mode differentiation.** The tree becomes straight Python code
   (:func:`_generate`) that computes, next to each node's value, its four
   partial derivatives with respect to ``(tn, fp, fn, tp)`` by the chain rule
   of the node's operation. That code is plain float arithmetic, which Numba
   compiles quickly for the CPU and for CUDA, and it runs as Python for
   scoring.

Rules the built-in metrics follow, applied to the user's function too:

* a division by zero gives 0 with zero partials (sklearn's
  ``zero_division=0``), and ``sqrt`` has zero partials at 0;
* the function sees (weighted) counts, as
  ``sklearn.metrics.confusion_matrix(...).ravel()`` gives them: the training
  loops pass the confusion matrix normalised to sum to one and its total
  weight ``scale``; the function is evaluated at ``cm * scale`` and its
  partials are multiplied by ``scale``.

The same generated code scores hard predictions
(:func:`sk_anyloss.metrics.get_scorer`), so the metric a model trains on and
the one it is selected on are one object.
"""

import dis
import hashlib
import inspect
import itertools
import math
import numbers
import types

import numpy as np

from ._metrics import Metric

N_INPUTS = 4  # tn, fp, fn, tp
_TRACES = itertools.count()  # numbers the traces of this process
MAX_PATHS = 256  # branch combinations a function may take


class _NotSupported(Exception):
    pass


# -- tracing -----------------------------------------------------------------


class _Node:
    """An expression graph node: ``op`` on ``args`` (nodes), or a constant
    (``op == "const"``, ``value``), or argument ``value`` (``op == "arg"``).
    Made by a :class:`_Graph` only, which makes equal expressions one node."""

    __slots__ = ("op", "args", "value")

    def __init__(self, op, args, value):
        self.op = op
        self.args = args
        self.value = value


class _Graph:
    """The nodes of every run of one tracing: an expression met on two paths
    is one node, computed once by the generated code."""

    def __init__(self):
        self.nodes = {}

    def node(self, op, args=(), value=None):
        key = (op, tuple(id(a) for a in args), repr(value))
        if key not in self.nodes:
            self.nodes[key] = _Node(op, args, value)
        return self.nodes[key]


def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _node(x, graph):
    if isinstance(x, _Symbol):
        return x.node
    if _is_number(x):
        return graph.node("const", value=float(x))
    raise _NotSupported(
        f"it combines a cell of the confusion matrix with {x!r}, which is not a number"
    )


class _Oracle:
    """Decides the branches of one run: the first ones as ``forced``, the
    rest as True; records every decision."""

    def __init__(self, forced, graph):
        self.forced = forced
        self.graph = graph
        self.decisions = []  # (op, left node, right node, outcome)

    def decide(self, op, a, b):
        k = len(self.decisions)
        if k >= 64:
            raise _NotSupported(
                "it takes more than 64 branches in a run (a loop over a comparison?)"
            )
        outcome = self.forced[k] if k < len(self.forced) else True
        self.decisions.append((op, _node(a, self.graph), _node(b, self.graph), outcome))
        return outcome


class _Symbol:
    """A traced value: arithmetic builds nodes; a comparison is a branch."""

    __slots__ = ("node", "oracle")
    __array_priority__ = 1000  # NumPy defers to our operators

    def __init__(self, node, oracle):
        self.node = node
        self.oracle = oracle

    def _new(self, op, *args):
        graph = self.oracle.graph
        node = graph.node(op, tuple(_node(a, graph) for a in args))
        return _Symbol(node, self.oracle)

    def __add__(self, other):
        return self._new("add", self, other)

    def __radd__(self, other):
        return self._new("add", other, self)

    def __sub__(self, other):
        return self._new("sub", self, other)

    def __rsub__(self, other):
        return self._new("sub", other, self)

    def __mul__(self, other):
        return self._new("mul", self, other)

    def __rmul__(self, other):
        return self._new("mul", other, self)

    def __truediv__(self, other):
        return self._new("div", self, other)

    def __rtruediv__(self, other):
        return self._new("div", other, self)

    def __pow__(self, other):
        return self._new("pow", self, other)

    def __rpow__(self, other):
        return self._new("pow", other, self)

    def __neg__(self):
        return self._new("neg", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self if self >= 0.0 else -self

    def __lt__(self, other):
        return self.oracle.decide("<", self, other)

    def __le__(self, other):
        return self.oracle.decide("<=", self, other)

    def __gt__(self, other):
        return self.oracle.decide(">", self, other)

    def __ge__(self, other):
        return self.oracle.decide(">=", self, other)

    def __eq__(self, other):
        return self.oracle.decide("==", self, other)

    def __ne__(self, other):
        return self.oracle.decide("!=", self, other)

    def __bool__(self):
        return self.oracle.decide("!=", self, 0.0)

    __hash__ = None

    # NumPy's functions call these on an object argument.
    def sqrt(self):
        return self._new("sqrt", self)

    def exp(self):
        return self._new("exp", self)

    def log(self):
        return self._new("log", self)

    def log2(self):
        return self._new("log2", self)

    def log10(self):
        return self._new("log10", self)

    def log1p(self):
        return self._new("log1p", self)

    def expm1(self):
        return self._new("expm1", self)

    def tanh(self):
        return self._new("tanh", self)

    def sin(self):
        return self._new("sin", self)

    def cos(self):
        return self._new("cos", self)

    def arctan(self):
        return self._new("atan", self)

    def _refuse(self, *args):
        raise _NotSupported(
            "it uses a cell of the confusion matrix where Python needs a plain "
            "number (float(), int(), round(), //, %, indexing, or a function "
            "that is not math's or NumPy's)"
        )

    __float__ = __int__ = __index__ = __round__ = _refuse
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _refuse
    __getitem__ = __iter__ = __len__ = _refuse


def _unary(op, fallback):
    def function(x):
        if isinstance(x, _Symbol):
            return x._new(op, x)
        return fallback(x)

    function.__name__ = op
    return function


def _symbolic_float(x=0.0):
    return x if isinstance(x, _Symbol) else float(x)


def _symbolic_pow(a, b):
    if isinstance(a, _Symbol) or isinstance(b, _Symbol):
        return (a if isinstance(a, _Symbol) else b)._new("pow", a, b)
    return math.pow(a, b)


def _symbolic_hypot(a, b):
    if isinstance(a, _Symbol) or isinstance(b, _Symbol):
        return _SYMBOLIC_MATH.sqrt(a * a + b * b)
    return math.hypot(a, b)


_SYMBOLIC_MATH = types.SimpleNamespace(
    **{name: getattr(math, name) for name in dir(math) if not name.startswith("_")}
)
for _op in ("sqrt", "exp", "log", "log2", "log10", "log1p", "expm1", "tanh", "sin",
            "cos", "atan"):  # fmt: skip
    setattr(_SYMBOLIC_MATH, _op, _unary(_op, getattr(math, _op)))
_SYMBOLIC_MATH.fabs = abs
_SYMBOLIC_MATH.pow = _symbolic_pow
_SYMBOLIC_MATH.hypot = _symbolic_hypot


def _no_test(x):
    if isinstance(x, _Symbol):
        raise _NotSupported(
            "it tests a cell of the confusion matrix with math.isfinite, isnan or "
            "isinf (the cells are finite)"
        )
    return math.isfinite(x)


_SYMBOLIC_MATH.isfinite = _SYMBOLIC_MATH.isnan = _SYMBOLIC_MATH.isinf = _no_test
_MATH_FUNCTIONS = {
    getattr(math, name): getattr(_SYMBOLIC_MATH, name)
    for name in ("sqrt", "exp", "log", "log2", "log10", "log1p", "expm1", "tanh")
    + ("sin", "cos", "atan", "fabs", "pow", "hypot")
}
# NumPy's float types as conversions: ``np.float64(tp)`` is ``float(tp)`` (the
# metric is computed in float64 anyway; ``np.float32`` is taken as float64).
_FLOAT_TYPES = (np.float64, np.float32, np.float16, np.double)
_MATH_FUNCTIONS.update(dict.fromkeys(_FLOAT_TYPES, _symbolic_float))


class _SymbolicNumpy(types.ModuleType):
    """``numpy`` as a traced function sees it: NumPy itself, but for its
    float types, which convert a symbol by keeping it."""

    def __getattr__(self, name):
        value = getattr(np, name)
        return _symbolic_float if any(value is t for t in _FLOAT_TYPES) else value


_SYMBOLIC_NUMPY = _SymbolicNumpy("numpy")


def _symbolic(function, memo=None):
    """``function`` with ``math`` (and the functions imported from it)
    swapped for their symbolic versions in its globals and closure, and the
    same for the user's functions it calls."""
    memo = {} if memo is None else memo
    if function in memo:
        return memo[function]
    env = dict(function.__globals__)
    memo[function] = None  # recursion guard
    for name in _names(function.__code__):
        if name in env:
            env[name] = _swap(env[name], memo)
        elif name == "float":  # the builtin: a symbol stays a symbol
            env[name] = _symbolic_float
    cells = None
    if function.__closure__:
        cells = tuple(
            types.CellType(_swap(cell.cell_contents, memo))
            for cell in function.__closure__
        )
    swapped = types.FunctionType(
        function.__code__, env, function.__name__, function.__defaults__, cells
    )
    swapped.__kwdefaults__ = function.__kwdefaults__
    memo[function] = swapped
    return swapped


def fingerprint(function, seen=None):
    """What the trace of ``function`` depends on besides its code: the values
    of the globals and closure cells it reads and of its default arguments,
    and the same of the user's functions it calls. The trace writes those
    values into the expression as constants, so a changed value calls for a
    new trace (``_metrics.resolve_metric``).

    Numbers, strings, tuples of them and small NumPy arrays (by a digest of
    their bytes) count by value; other objects by identity: a list or dict
    changed in place, or an attribute of an object (``config.cost``), is not
    seen (it would take walking arbitrary objects on every fit)."""
    seen = set() if seen is None else seen
    if function in seen:
        return ("recursion", id(function))
    seen.add(function)
    env = function.__globals__
    items = [
        (name, _frozen(env[name], seen))
        for name in sorted(set(_global_loads(function.__code__)))
        if name in env
    ]
    for cell in function.__closure__ or ():
        try:
            items.append(("<cell>", _frozen(cell.cell_contents, seen)))
        except ValueError:  # an empty cell
            items.append(("<cell>", None))
    items.append(("<defaults>", _frozen(function.__defaults__, seen)))
    kwdefaults = sorted((function.__kwdefaults__ or {}).items())
    items.append(("<kwdefaults>", _frozen(tuple(kwdefaults), seen)))
    return (function.__code__, tuple(items))


# Arrays up to this many bytes count by a digest of their contents.
_DIGEST_BYTES = 1 << 20


def _frozen(value, seen):
    """``value`` as :func:`fingerprint` compares it (hashable)."""
    if value is None or isinstance(value, (numbers.Number, str, bytes)):
        return (type(value), value)
    if isinstance(value, tuple):  # immutable: no cycle without a list or dict
        return (tuple, tuple(_frozen(v, seen) for v in value))
    if isinstance(value, np.ndarray) and value.nbytes <= _DIGEST_BYTES:
        digest = hashlib.blake2b(np.ascontiguousarray(value).tobytes()).digest()
        return (np.ndarray, value.dtype.str, value.shape, digest)
    if isinstance(value, types.FunctionType):
        return fingerprint(value, seen)
    return ("object", id(value))


def _global_loads(code):
    """Names ``code`` (and the code nested in it) loads as globals."""
    for instruction in dis.get_instructions(code):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            yield instruction.argval
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_loads(const)


def _names(code):
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _swap(value, memo):
    if value is math:
        return _SYMBOLIC_MATH
    if value is np:
        return _SYMBOLIC_NUMPY
    try:
        if value in _MATH_FUNCTIONS:
            return _MATH_FUNCTIONS[value]
    except TypeError:  # unhashable
        return value
    if isinstance(value, types.FunctionType) and memo.get(value, 0) is not None:
        return _symbolic(value, memo)
    return value


def _trace(function):
    """The decision tree of ``function``: a leaf ``("value", node)`` or
    ``("raise", message)``, or ``("branch", (op, a, b), if_true, if_false)``."""
    traced = _symbolic(function)
    graph = _Graph()
    leaves = {}  # decision path -> leaf
    todo = [()]
    while todo:
        forced = todo.pop()
        oracle = _Oracle(forced, graph)
        args = [_Symbol(graph.node("arg", value=k), oracle) for k in range(N_INPUTS)]
        try:
            result = traced(*args)
        except _NotSupported:
            raise
        except RecursionError:
            raise _NotSupported("it recurses without end on symbols") from None
        except Exception as exc:  # the function raised: a leaf of its own
            if "_Symbol" in str(exc):  # an operation the tracing lacks
                raise _NotSupported(
                    f"{exc}; use arithmetic, comparisons, min, max, abs, and "
                    "math or NumPy's sqrt, exp, log, log2, log10, log1p, expm1, "
                    "tanh, sin, cos, atan (arctan), pow (power), hypot"
                ) from None
            leaf = ("raise", f"{type(exc).__name__}: {exc}")
        else:
            if isinstance(result, (_Symbol,)) or _is_number(result):
                leaf = ("value", _node(result, graph))
            else:
                raise _NotSupported(f"it returns {result!r}, not a number")
        path = tuple(d[3] for d in oracle.decisions)
        leaves[path] = (leaf, oracle.decisions)
        for k in range(len(forced), len(path)):
            todo.append(path[:k] + (not path[k],))
        if len(leaves) > MAX_PATHS:
            raise _NotSupported(
                f"it takes more than {MAX_PATHS} combinations of branches"
            )
    return _tree(leaves, ())


def _tree(leaves, prefix):
    if prefix in leaves:
        return leaves[prefix][0]
    # The decision at this depth, from any path that goes through it.
    for path, (_, decisions) in leaves.items():
        if path[: len(prefix)] == prefix:
            op, a, b, _ = decisions[len(prefix)]
            return (
                "branch",
                (op, a, b),
                _tree(leaves, prefix + (True,)),
                _tree(leaves, prefix + (False,)),
            )
    raise AssertionError("a branch with no path")  # pragma: no cover


# -- forward-mode code generation ---------------------------------------------

# Functions of one argument: (value, slope) as source templates in ``{x}``
# (the argument's value) and ``{v}`` (the function's value).
_UNARY = {
    "sqrt": ("_sqrt({x})", "(0.5 / {v} if {v} > 0.0 else 0.0)"),
    "exp": ("_exp({x})", "{v}"),
    "log": ("_log({x})", "1.0 / {x}"),
    "log2": ("_log({x}) / 0.6931471805599453", "1.4426950408889634 / {x}"),
    "log10": ("_log({x}) / 2.302585092994046", "0.4342944819032518 / {x}"),
    "log1p": ("_log1p({x})", "1.0 / (1.0 + {x})"),
    "expm1": ("_expm1({x})", "{v} + 1.0"),
    "tanh": ("_tanh({x})", "1.0 - {v} * {v}"),
    "sin": ("_sin({x})", "_cos({x})"),
    "cos": ("_cos({x})", "-_sin({x})"),
    "atan": ("_atan({x})", "1.0 / (1.0 + {x} * {x})"),
}


def _literal(value):
    if math.isnan(value):
        return "math.nan"
    if math.isinf(value):
        return "math.inf" if value > 0 else "-math.inf"
    return repr(float(value))


def _order(roots):
    """The nodes ``roots`` depend on, each after its arguments."""
    order, seen = [], set()

    def visit(node):
        stack = [(node, False)]
        while stack:
            current, expanded = stack.pop()
            if id(current) in seen:
                continue
            if expanded:
                seen.add(id(current))
                order.append(current)
                continue
            stack.append((current, True))
            stack.extend((a, False) for a in current.args if id(a) not in seen)

    for root in roots:
        visit(root)
    return order


def _generate(tree, compiled):
    """Python source of ``_anyloss_metric(tn, fp, fn, tp)``, returning
    ``(value, d/dtn, d/dfp, d/dfn, d/dtp)``.

    Every node is computed once, first (values, then the partials of the
    nodes the results depend on), then the decision tree picks the leaf:
    each operation is safe to evaluate off its own path (divisions, logs,
    square roots and powers are guarded). A ``raise`` leaf raises in the
    Python build and returns NaN in the compiled one (compiled code cannot
    raise; the loops report non-finite values).
    """
    leaf_nodes, guard_nodes = _leaves_and_guards(tree)
    names = {}

    def name(node):
        if node.op == "const":
            return _literal(node.value)
        if node.op == "arg":
            return ("tn", "fp", "fn", "tp")[node.value]
        return names.setdefault(id(node), f"_v{len(names)}")

    def partial(node, k):
        if node.op == "const":
            return "0.0"
        if node.op == "arg":
            return "1.0" if node.value == k else "0.0"
        return f"{name(node)}_d{k}"

    lines = ["def _anyloss_metric(tn, fp, fn, tp):"]
    for node in _order(leaf_nodes + guard_nodes):
        if node.op not in ("const", "arg"):
            x = [name(a) for a in node.args]
            lines.append(f"    {name(node)} = {_value_source(node.op, x)}")
    for node in _order(leaf_nodes):
        if node.op in ("const", "arg"):
            continue
        v, x = name(node), [name(a) for a in node.args]
        for k in range(N_INPUTS):
            dx = [partial(a, k) for a in node.args]
            lines.append(
                f"    {partial(node, k)} = {_partial_source(node.op, v, x, dx)}"
            )

    def block(node, indent):
        pad = " " * indent
        if node[0] == "value":
            parts = [name(node[1])] + [partial(node[1], k) for k in range(N_INPUTS)]
            return [f"{pad}return ({', '.join(parts)})"]
        if node[0] == "raise":
            if compiled:
                return [f"{pad}return ({', '.join(['math.nan'] * 5)})"]
            return [f"{pad}raise _MetricError({node[1]!r})"]
        _, (op, a, b), if_true, if_false = node
        return (
            [f"{pad}if {name(a)} {op} {name(b)}:"]
            + block(if_true, indent + 4)
            + [f"{pad}else:"]
            + block(if_false, indent + 4)
        )

    return "\n".join(lines + block(tree, 4)) + "\n"


def _leaves_and_guards(tree):
    """The result nodes of the tree's leaves, and the nodes its comparisons
    compare."""
    if tree[0] == "value":
        return [tree[1]], []
    if tree[0] == "raise":
        return [], []
    _, (_, a, b), if_true, if_false = tree
    leaves, guards = [], [a, b]
    for branch in (if_true, if_false):
        more_leaves, more_guards = _leaves_and_guards(branch)
        leaves += more_leaves
        guards += more_guards
    return leaves, guards


def _value_source(op, x):
    if op in ("add", "sub", "mul"):
        return f"{x[0]} {dict(add='+', sub='-', mul='*')[op]} {x[1]}"
    if op == "div":
        return f"({x[0]} / {x[1]}) if {x[1]} != 0.0 else 0.0"
    if op == "neg":
        return f"-{x[0]}"
    if op == "pow":
        return f"_pow({x[0]}, {x[1]})"
    return _UNARY[op][0].format(x=x[0])


def _partial_source(op, v, x, dx):
    """Source of one partial of node ``v = op(x)``, from the arguments'
    values ``x`` and their partials ``dx`` (the chain rule)."""
    if op == "add":
        return f"{dx[0]} + {dx[1]}"
    if op == "sub":
        return f"{dx[0]} - {dx[1]}"
    if op == "mul":
        return f"{dx[0]} * {x[1]} + {x[0]} * {dx[1]}"
    if op == "div":
        return f"(({dx[0]} - {v} * {dx[1]}) / {x[1]}) if {x[1]} != 0.0 else 0.0"
    if op == "neg":
        return f"-{dx[0]}"
    if op == "pow":
        # d(a^b) = b a^(b-1) da + a^b log(a) db (where a > 0)
        return (
            f"({x[1]} * _pow({x[0]}, {x[1]} - 1.0) * {dx[0]} if {dx[0]} != 0.0 "
            f"else 0.0) + ({v} * _log({x[0]}) * {dx[1]} if {dx[1]} != 0.0 and "
            f"{x[0]} > 0.0 else 0.0)"
        )
    slope = _UNARY[op][1].format(x=x[0], v=v)
    return f"({slope}) * {dx[0]}"


class _MetricError(Exception):
    """What a user's function raised, at a point where it raises."""


def _source(jit):
    """The elementary functions the generated code calls, compiled with
    ``jit``: ``math``'s, which Numba and numba.cuda both compile."""

    @jit
    def _sqrt(x):
        return math.sqrt(x) if x >= 0.0 else math.nan

    @jit
    def _exp(x):
        return math.exp(x) if x < 709.0 else math.inf

    @jit
    def _log(x):
        if x > 0.0:
            return math.log(x)
        return -math.inf if x == 0.0 else math.nan

    @jit
    def _log1p(x):
        if x > -1.0:
            return math.log1p(x)
        return -math.inf if x == -1.0 else math.nan

    @jit
    def _expm1(x):
        return math.expm1(x) if x < 709.0 else math.inf

    @jit
    def _tanh(x):
        return math.tanh(x)

    @jit
    def _sin(x):
        return math.sin(x)

    @jit
    def _cos(x):
        return math.cos(x)

    @jit
    def _atan(x):
        return math.atan(x)

    @jit
    def _pow(a, b):
        # Defined everywhere, without raising: NaN for a real power of a
        # negative number, infinities where the power overflows.
        if a != a or b != b:
            return math.nan
        if math.isinf(a) or math.isinf(b):
            return a**b
        if a == 0.0:
            return math.inf if b < 0.0 else (1.0 if b == 0.0 else 0.0)
        if a < 0.0 and b != math.floor(b):
            return math.nan
        if b * math.log(abs(a)) > 709.0:
            odd = a < 0.0 and b / 2.0 != math.floor(b / 2.0)
            return -math.inf if odd else math.inf
        return a**b

    return dict(locals())


def _identity(f):
    return f


def _formula_source(cm, scale, params, partials):
    # ``f`` (the differentiated user function) is a global of each build; it
    # sees counts, ``cm * scale``, and its partials are scaled back.
    value, d0, d1, d2, d3 = f(  # noqa: F821
        cm[0] * scale, cm[1] * scale, cm[2] * scale, cm[3] * scale
    )
    partials[0] = d0 * scale
    partials[1] = d1 * scale
    partials[2] = d2 * scale
    partials[3] = d3 * scale
    return value


# Where a metric function is checked before training, besides the matrix
# training starts from: shares of the total weight in (tn, fp, fn, tp), none
# of them on a zero denominator.
_CHECK_POINTS = np.array(
    [[0.4, 0.1, 0.2, 0.3], [0.25, 0.25, 0.25, 0.25], [0.7, 0.05, 0.1, 0.15]]
)


def _show(values):
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


class UserMetric(Metric):
    """A user's function of ``(tn, fp, fn, tp)`` as the training loops take
    it (see the module's docstring)."""

    cacheable = False

    def __init__(self, function):
        if not callable(function):
            raise TypeError(f"metric must be a name or a function, got {function!r}.")
        self.function = function
        self.name = getattr(function, "__qualname__", repr(function))
        # One key per trace: a function traced again (a global it reads has
        # changed) must not find the compiled forms of the old trace.
        self.key = f"user_{id(function)}_{next(_TRACES)}"
        self.joint = False
        self.average = None
        self.params = np.zeros(2)
        _check_arity(function)
        if not isinstance(function, types.FunctionType):
            raise ValueError(
                f"The metric {self.name} must be a Python function (a def or a "
                f"lambda), got {type(function).__name__}."
            )
        try:
            tree = _trace(function)
        except _NotSupported as exc:
            raise ValueError(
                f"The metric function {self.name} cannot be trained on: {exc}."
            ) from None
        self._code = {
            compiled: compile(
                _generate(tree, compiled), f"<metric {self.name}>", "exec"
            )
            for compiled in (False, True)
        }
        self._python = self._build(_identity, compiled=False)

    def _build(self, jit, compiled=True):
        env = {"math": math, "_MetricError": _MetricError}
        env.update(_source(jit))
        exec(self._code[compiled], env)
        return env["_anyloss_metric"]

    def array_form(self, jit, qualname, inner=None):
        env = dict(_formula_source.__globals__)
        env["f"] = (inner or jit)(self._build(inner or jit))
        fn = types.FunctionType(_formula_source.__code__, env, qualname)
        fn.__qualname__ = qualname
        return jit(fn)

    def value(self, tn, fp, fn, tp):
        """The function at a confusion matrix of counts (a division by zero
        gives 0)."""
        return self._checked(np.array([tn, fp, fn, tp], dtype=float))[0]

    def check(self, scale, positive_share=0.5):
        """Evaluate the function before training, where counts of a total
        weight ``scale`` can be: at the matrix training starts from (every
        sample half positive, for a share ``positive_share`` of positives)
        and at a few others. A ``ValueError`` naming the function and the
        confusion matrix if it fails to compile, raises, returns something
        other than a finite number, has non-finite partial derivatives, or is
        not differentiable there (its partials disagree with its slopes on
        either side: a kink of ``abs``, ``min``, ``max`` or a branch)."""
        from ._kernels_cpu import cpu_metric

        try:
            cpu_metric(self)
        except Exception as exc:  # Numba's typing and lowering errors
            message = str(exc).strip().splitlines()
            raise ValueError(
                f"The metric function {self.name} could not be compiled: "
                f"{message[0] if message else type(exc).__name__}."
            ) from exc
        start = np.array([1 - positive_share] * 2 + [positive_share] * 2)
        for shares in [0.5 * start, *_CHECK_POINTS]:
            counts = shares * scale
            value, *exact = self._checked(counts)
            exact = np.asarray(exact)
            if not np.all(np.isfinite(exact)):
                self._fail(counts, "its partial derivatives are not finite")
            # Slopes on each side: they differ from each other, and from the
            # partials, at a kink (a central difference would average them).
            # Each is extrapolated from two steps (Richardson: 2 s(h/2) - s(h))
            # so that the curvature's error, O(h), cancels: where a partial
            # is 0 (at an extremum) a plain one-sided slope is that error.
            for side in (1.0, -1.0):
                slopes = np.empty(4)
                for k in range(4):
                    step = side * 1e-6 * max(counts[k], 1e-3 * scale)
                    slope = []
                    for h in (step, step / 2):
                        moved = counts.copy()
                        moved[k] += h
                        slope.append((self._checked(moved)[0] - value) / h)
                    slopes[k] = 2.0 * slope[1] - slope[0]
                tolerance = (
                    1e-3 * (np.abs(exact) + np.abs(slopes))
                    + 1e-7 * (1.0 + abs(value)) / scale
                )
                if np.any(np.abs(exact - slopes) > tolerance):
                    self._fail(
                        counts,
                        "it is not differentiable there (its partial derivatives, "
                        f"{_show(exact)}, are not its slopes, {_show(slopes)}: a "
                        "kink of abs, min, max or a branch?)",
                    )

    def _checked(self, counts):
        """``[value, *partials]`` at ``counts``, or a ``ValueError``."""
        try:
            out = self._python(*(float(c) for c in counts))
        except _MetricError as exc:
            self._fail(counts, f"it raised {exc}")
        if not math.isfinite(out[0]):
            self._fail(counts, f"it returned {out[0]}")
        return list(out)

    def _fail(self, counts, reason):
        tn, fp, fn, tp = (float(c) for c in counts)
        raise ValueError(
            f"The metric function {self.name} cannot be trained on: at the "
            f"confusion matrix tn={tn:.6g}, fp={fp:.6g}, fn={fn:.6g}, "
            f"tp={tp:.6g}, {reason}."
        )

    def __reduce__(self):
        # Through the per-process cache: the same trace in this process, a
        # trace of its own in another; the average travels with it.
        return _resolve, (self.function, self.average)

    def __copy__(self):
        # ``with_average``'s copy: the same trace (not ``__reduce__``'s).
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        return other


def _check_arity(function):
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(0.0, 0.0, 0.0, 0.0)
    except TypeError:
        raise ValueError(
            f"The metric function {function.__qualname__}{signature} must take the "
            "four cells of the confusion matrix, f(tn, fp, fn, tp), as "
            "sklearn.metrics.confusion_matrix(...).ravel() gives them."
        ) from None


def _resolve(function, average):
    from ._metrics import resolve_metric

    return resolve_metric(function, average=average)
