"""sk_anyloss: scikit-learn classifiers trained on the metric you report."""

from . import metrics
from ._linear import AnyLossClassifier
from ._metrics import METRIC_NAMES
from ._mlp import AnyLossMLPClassifier

__all__ = ["AnyLossClassifier", "AnyLossMLPClassifier", "METRIC_NAMES", "metrics"]
__version__ = "0.1.0.dev0"
