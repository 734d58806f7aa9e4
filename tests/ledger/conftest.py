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


def _pg_bin() -> Path | None:
    import glob
    import shutil

    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(candidate).parent
    return None


@pytest.fixture(name="postgres_url", scope="session")
def postgres_url_fixture(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A real PostgreSQL server on 127.0.0.1 started for this test session; yields its URL."""
    import os
    import shutil
    import socket

    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install psycopg)")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    import tempfile

    # Not under pytest's tmp dir: as root, the server runs as the postgres user, who must
    # be able to reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="finops-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    log = root / "pg.log"
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
