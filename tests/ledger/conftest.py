"""Shared helpers for the ledger tests: realistic rows and child-process scripts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from finops.ledger.row import LedgerRow

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def make_row(i: int, **kw: object) -> LedgerRow:
    """A realistic ok row; ``kw`` overrides fields."""
    base: dict[str, object] = dict(
        row_id=f"row-{i}",
        call_id=f"call-{i}",
        attempt=1,
        ts_start=T0 + timedelta(minutes=i),
        ts_end=T0 + timedelta(minutes=i, seconds=2),
        latency_ms=2000.0,
        provider="openai",
        endpoint="chat.completions",
        status="ok",
        requested_model="gpt-4o",
        served_model="gpt-4o-2024-08-06",
        http_status=200,
        input_tokens=1000,
        cache_read_tokens=500,
        output_tokens=200,
        cost_input=Decimal("0.0025"),
        cost_cache_read=Decimal("0.000625"),
        cost_output=Decimal("0.002"),
        cost_total=Decimal("0.005125"),
        price_version="2026-11-01",
        pricing_status="priced",
        tags={"team": "search", "feature": f"f{i % 3}"},
        request_hash="ab" * 32,
    )
    base.update(kw)
    return LedgerRow(**base)  # type: ignore[arg-type]


def child(script: str, *args: str, **popen: object) -> subprocess.Popen[str]:
    """Start ``python -c script args...`` with the repo importable."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(script)
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", code, *args], text=True, **popen
    )


@pytest.fixture(name="make_row")
def make_row_fixture():  # type: ignore[no-untyped-def]
    """``make_row(i, **overrides)`` → a realistic LedgerRow."""
    return make_row


@pytest.fixture(name="spawn")
def spawn_fixture():  # type: ignore[no-untyped-def]
    """``spawn(script, *args, **popen)`` → a child Python process; killed at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(script: str, *args: str, **popen: object) -> subprocess.Popen[str]:
        proc = child(script, *args, **popen)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
