"""The README's quick start runs and does what it says."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python block"
    exec(compile(blocks[0], "README quick start", "exec"), {})
    score = float(re.search(r"test F1: ([0-9.]+)", capsys.readouterr().out).group(1))
    assert score > 0.9
