import subprocess
import sys

import pytest

from sk_anyloss import _suite
from sk_anyloss.__main__ import main, summary_table


def test_summary_table_has_a_row_per_model():
    records = _suite.run(["breast_cancer"], ["gmean"], ("linear",), n_folds=2)
    table = summary_table(records, "gmean")
    rows = table.splitlines()[2:]
    assert len(rows) == len(_suite.linear_models())
    assert "| **AnyLoss** |" in table
    scores = [float(row.split("|")[2]) for row in rows]
    assert all(0.8 < s <= 1.0 for s in scores)


def test_main_prints_the_table(capsys):
    assert main(["--metric", "mcc", "--folds", "2", "--models", "linear"]) == 0
    out = capsys.readouterr().out
    assert "| mcc (mean over datasets) |" in out
    assert "| **AnyLoss** |" in out and "| LR tuned threshold |" in out


def test_main_compares_the_mlps(capsys):
    assert main(["--metric", "f1", "--folds", "2", "--models", "mlp"]) == 0
    out = capsys.readouterr().out
    assert "| **AnyLoss MLP** |" in out and "| MLP balanced |" in out


def test_main_saves_the_plot(tmp_path, capsys):
    path = tmp_path / "out.png"
    argv = ["--metric", "f1", "--folds", "2", "--models", "linear", "--plot"]
    assert main(argv + [str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_bench_extra_is_a_clear_error():
    with pytest.raises(ImportError, match=r"install the bench extra"):
        _suite.require("sk_anyloss_no_such_module")


def test_module_entry_point_rejects_unknown_metric():
    result = subprocess.run(
        [sys.executable, "-m", "sk_anyloss", "--metric", "auc"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr
