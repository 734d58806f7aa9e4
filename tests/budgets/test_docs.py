"""The runnable example in docs/budgets.md runs and does what the text says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "budgets.md"


def test_docs_example_runs() -> None:
    text = DOC.read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), str(DOC), "exec"), {"__name__": "docs_example"})
    printed = out.getvalue()
    assert "refused: team=search/day limit 0.05 spent 0.0071" in printed
    assert "flags for the ledger row: ['budget_downgrade:agent=*/hour/tokens']" in printed
    assert "agent=planner" in printed and "spent=17600" in printed
