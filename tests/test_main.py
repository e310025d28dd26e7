import subprocess
import sys

from sk_anyloss.__main__ import compare, format_table, main


def test_compare_reports_every_model_and_metric():
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    rows = compare(X, 1 - y, ["f1", "gmean"], n_folds=3)
    assert len(rows) == 8
    assert {r[0] for r in rows} == {"f1", "gmean"}
    assert all(0.8 < r[2] <= 1.0 and r[4] > 0 for r in rows)
    assert format_table(rows).count("\n") == len(rows) + 1
    assert np.isfinite([r[3] for r in rows]).all()


def test_main_prints_the_table(capsys):
    assert main(["--metric", "mcc", "--folds", "2"]) == 0
    out = capsys.readouterr().out
    assert "AnyLossClassifier('mcc')" in out and "TunedThreshold" in out


def test_module_entry_point_rejects_unknown_metric():
    result = subprocess.run(
        [sys.executable, "-m", "sk_anyloss", "--metric", "auc"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "invalid choice" in result.stderr
