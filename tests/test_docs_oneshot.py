"""docs/oneshot.md tells the truth: its Python block runs as written and prints the space and
the exported subnet it describes."""
from __future__ import annotations

import re
from pathlib import Path

DOC = (Path(__file__).resolve().parents[1] / "docs" / "oneshot.md").read_text()
PYTHON = re.findall(r"^```python\n(.*?)^```", DOC, flags=re.DOTALL | re.MULTILINE)


def test_oneshot_doc_block_runs(capsys):
    assert len(PYTHON) == 1
    exec(compile(PYTHON[0], "docs/oneshot.md", "exec"), {"__name__": "docs_oneshot"})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "['block', 'stem.kernel_size_choice', 'width'] 12"
    assert "'width':" in out[1] and "'block':" in out[1]
