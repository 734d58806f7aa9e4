"""A short soak (bench/soak.py for a few seconds): concurrent async calls with injected
faults; every wrapped HTTP attempt has its row, and memory stays flat."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_short_soak() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--seconds",
            "8",
            "--concurrency",
            "20",
            "--fault-rate",
            "0.05",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout

    def figure(name: str) -> float:
        match = re.search(rf"^{name}: ([-+0-9.]+)", out, re.MULTILINE)
        assert match, out
        return float(match.group(1))

    assert figure("ledger_rows") > 100
    assert figure("rows_minus_attempts") == 0, out
    assert figure("rss_growth") < 50, out
