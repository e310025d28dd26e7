"""sk_anyloss: scikit-learn classifiers trained on the metric you report."""

from . import metrics
from ._backend import configure_threading_layer as _configure_threading_layer
from ._linear import AnyLossClassifier
from ._metrics import METRIC_NAMES
from ._mlp import AnyLossMLPClassifier

_configure_threading_layer()

__all__ = ["AnyLossClassifier", "AnyLossMLPClassifier", "METRIC_NAMES", "metrics"]
__version__ = "0.1.0.dev0"
