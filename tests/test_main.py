"""The main job (python -m sk_anyloss) and the comparison it runs (_demo)."""

import re
import subprocess
import sys

import numpy as np
import pytest

from sk_anyloss import _demo
from sk_anyloss.__main__ import main


def test_demo_data_is_the_imbalanced_digits_task():
    X, y = _demo.demo_data()
    assert X.shape == (1797, 64)
    assert set(np.unique(y)) == {0, 1}
    assert 0.09 < y.mean() < 0.11  # one digit of ten


@pytest.fixture(scope="module")
def records():
    X, y = _demo.demo_data()
    return _demo.compare(X, y, ["f1", "mcc"], ("linear",), n_folds=2)


def test_compare_scores_every_model_once_per_metric_it_depends_on(records):
    # The metric-free baselines once, the others once per metric.
    assert len(records) == 2 + 2 * 2
    for r in records:
        assert set(r["scores"]) >= set(_demo.REPORTED_METRICS)
        assert all(0.0 <= v <= 1.0 for v in r["scores"].values())
        assert r["fit_s"] > 0
    anyloss = [r for r in records if r["anyloss"]]
    assert {r["trained_for"] for r in anyloss} == {"f1", "mcc"}


def test_summary_table_has_a_row_per_model(records):
    table = _demo.summary_table(records, ["f1", "mcc"])
    rows = table.splitlines()[2:]
    assert len(rows) == len(_demo.linear_models())
    assert "| **AnyLoss** |" in table
    assert table.splitlines()[0] == "| model | F1 | MCC | fit time per fold (ms) |"
    scores = [float(row.split("|")[2]) for row in rows]
    assert all(0.5 < s <= 1.0 for s in scores)


def test_plot_is_written(records, tmp_path):
    path = tmp_path / "demo.png"
    _demo.plot(records, ["f1", "mcc"], path, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000


def test_main_prints_the_table_and_defines_every_abbreviation(capsys):
    assert main(["--metric", "mcc", "--folds", "2", "--models", "linear"]) == 0
    out = capsys.readouterr().out
    assert "| model | MCC | fit time per fold (ms) |" in out
    assert "| **AnyLoss** |" in out and "| LR tuned threshold |" in out
    for name in ("LR", "LR balanced", "LR tuned threshold", "AnyLoss", "MCC"):
        assert f"  {name}: " in out
    assert "digit 8" in out


def test_compare_runs_the_mlps():
    X, y = _demo.demo_data()
    X, y = X[:360], y[:360]  # the MLP family in seconds
    records = _demo.compare(X, y, ["f1"], ("mlp",), n_folds=2)
    table = _demo.summary_table(records, ["f1"])
    assert "| **AnyLoss MLP** |" in table and "| MLP balanced |" in table
    assert len(table.splitlines()) == 2 + len(_demo.mlp_models())


def test_main_saves_the_plot(tmp_path, capsys):
    path = tmp_path / "out.png"
    argv = ["--metric", "f1", "--folds", "2", "--models", "linear", "--plot"]
    assert main(argv + [str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_module_entry_point_rejects_unknown_metric():
    result = subprocess.run(
        [sys.executable, "-m", "sk_anyloss", "--metric", "auc"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_bad_folds_and_plot_folders_are_refused_before_any_fit(tmp_path, capsys):
    for argv, message in [
        (["--folds", "1"], r"--folds must be between 2 and 174"),
        (["--folds", "5000"], r"--folds must be between 2 and 174"),
        (["--plot", str(tmp_path / "missing" / "out.png")], r"folder .* not exist"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(["--models", "linear", *argv])
        assert exit_.value.code == 2
        assert re.search(message, capsys.readouterr().err)
