"""The development / confirmation protocol (benchmarks/protocol.py)."""

import numpy as np
import protocol
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

import suite


def test_halves_are_a_fixed_random_split_of_the_protocol_datasets():
    parts = protocol.halves()
    dev, confirm = set(parts["dev"]), set(parts["confirm"])
    assert not dev & confirm
    assert dev | confirm == set(suite.DATASETS) - set(protocol.EXCLUDED)
    assert len(dev) >= 15 and len(confirm) >= 15
    assert protocol.halves() == parts  # the recorded seed, not the clock
    assert protocol.halves(seed=1) != parts


def test_at_least_thirty_datasets_of_300_to_300000_rows():
    keys = protocol.protocol_keys()
    assert len(keys) >= 30
    from test_suite import EXPECTED

    assert all(300 <= EXPECTED[k][0] <= 300_000 for k in keys)
    assert all(not 300 <= EXPECTED[k][0] <= 300_000 for k in protocol.EXCLUDED)


@pytest.mark.parametrize(
    "metric, score",
    [
        ("f1", lambda y, p: f1_score(y, p, zero_division=0)),
        ("balanced_accuracy", balanced_accuracy_score),
    ],
)
def test_best_threshold_is_the_best_cut_of_the_scores(metric, score):
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(3, 40))
        y = np.r_[0, 1, rng.integers(0, 2, n - 2)]
        s = np.round(rng.normal(size=n), 1)  # ties
        t = protocol.best_threshold(y, s, metric)
        cuts = np.r_[s, np.inf]
        best = max(score(y, (s >= c).astype(int)) for c in cuts)
        assert score(y, (s >= t).astype(int)) == pytest.approx(best, abs=1e-12)


def test_margins_are_over_the_better_peer(tmp_path, monkeypatch):
    records = {}
    for key, scores in {"a": (0.5, 0.6, 0.7), "b": (0.3, 0.2, 0.1)}.items():
        for label, value in zip(
            ["LR tuned threshold", "LR balanced", "default"], scores
        ):
            records[protocol.record_key(key, 0, label, "f1")] = dict(
                score=value, fit_s=2.0 if label == "LR tuned threshold" else 0.5
            )
    (m,) = protocol.margins(records, "linear", ["a", "b"], "default", "f1", (0,))
    # means: tuned 0.4, balanced 0.4, ours 0.4 -> margin 0; time 0.5 / 2.
    assert m[1] == pytest.approx(0.0) and m[2] == pytest.approx(0.25)
    (missing,) = protocol.margins(records, "linear", ["a"], "default", "f1", (1,))
    assert missing is None
