"""Faults, each with a real process where one exists: what the user's call returns
(unchanged), what is recorded, and whether every row lands once the fault clears.

Where the fix belongs in finops/ledger/ (being rewritten for multi-process use), the test
says so with an explicit xfail naming the missing behaviour instead of passing silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest

import finops
from finops.devserver import DevServer, Fault
from finops_testing import REDIS_SERVER, RedisServer

HERE = Path(__file__).parent
MSG: Any = [{"role": "user", "content": "hello there"}]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), str(HERE)])}


def _client(fo: finops.FinOps, server: DevServer, **kw: Any) -> openai.OpenAI:
    return fo.wrap(
        openai.OpenAI(api_key="sk-fault", base_url=server.openai_base_url, max_retries=2, **kw)
    )


def _call(client: openai.OpenAI, **kw: Any) -> str:
    reply = client.chat.completions.create(model="gpt-4o", messages=MSG, **kw)
    return str(reply.choices[0].message.content)


def _count(fo: finops.FinOps, where: str = "TRUE") -> int:
    return int(fo.ledger.query(f"SELECT count(*) FROM calls WHERE {where}")[0][0])


@pytest.fixture()
def raw(devserver: DevServer) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-fault", base_url=devserver.openai_base_url, max_retries=2)


# -- DuckDB locked by another process ------------------------------------------------------


def test_duckdb_locked_by_another_process(
    devserver: DevServer, tmp_path: Path, raw: openai.OpenAI
) -> None:
    ledger = tmp_path / "l.duckdb"
    fo = finops.FinOps(ledger=ledger)
    client = _client(fo, devserver)
    _call(client)
    assert fo.flush(timeout_s=30)
    holder = subprocess.Popen(
        [sys.executable, str(HERE / "fault_worker.py"), "hold-duckdb", str(ledger), "4"],
        stdout=subprocess.PIPE,
        env=ENV,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        line = ""
        while "holding" not in line and time.monotonic() < deadline:
            line = holder.stdout.readline() if holder.stdout else ""
        assert "holding" in line, "the holder process did not get the file"
        expected = _call(raw)
        t0 = time.perf_counter()
        answers = [_call(client) for _ in range(10)]
        elapsed = time.perf_counter() - t0
        assert answers == [expected] * 10  # unchanged for the user
        assert elapsed < 5, f"calls waited on the locked ledger ({elapsed:.2f}s)"
        # Writers never need the catalog file (live ledger, issue 10): rows land meanwhile.
        assert fo.flush(timeout_s=5) is True
        assert fo.ledger.pending_rows == 0
    finally:
        holder.wait(timeout=30)
    assert fo.flush(timeout_s=30)
    assert _count(fo) == 11
    fo.close()


# -- Redis killed mid-run and restarted (budgets) -----------------------------------------

REDIS = REDIS_SERVER


@pytest.mark.redis
@pytest.mark.skipif(REDIS is None, reason="needs redis-server on PATH")
def test_redis_killed_mid_run_and_restarted(
    devserver: DevServer, tmp_path: Path, raw: openai.OpenAI
) -> None:
    redis_server = RedisServer(tmp_path)
    url = redis_server.url + "?socket_timeout=0.5&socket_connect_timeout=0.3"
    fo = finops.FinOps(
        ledger=tmp_path / "l.duckdb",
        budgets=[
            finops.Budget(
                name="open",
                scope={"team": "a"},
                limit="100",
                period="day",
                on_unavailable="fail_open",
            ),
            finops.Budget(name="closed", scope={"team": "b"}, limit="100", period="day"),
        ],
        budget_store=url,
    )
    client = _client(fo, devserver)
    expected = _call(raw)
    try:
        with finops.tags(team="a"):
            assert _call(client) == expected
        redis_server.kill()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with finops.tags(team="a"):  # fail_open: the call goes through, flagged
                assert [_call(client) for _ in range(3)] == [expected] * 3
            with finops.tags(team="b"), pytest.raises(finops.BudgetBackendUnavailable):
                _call(client)  # fail_closed: refused before the network, as configured
        redis_server.start()  # restarted on the same port, empty
        with finops.tags(team="a"):
            assert _call(client) == expected
        with finops.tags(team="b"):
            assert _call(client) == expected
        assert fo.flush(timeout_s=30)
        assert _count(fo, "tags['team'] = 'a'") == 5
        assert _count(fo, "tags['team'] = 'a' AND budget_flags IS NOT NULL") >= 3
        assert _count(fo, "tags['team'] = 'b' AND status = 'ok'") == 1
        # after the restart the counters were re-seeded from the ledger: spend is not lost
        status = {s.name: s for s in fo.budget_status()}
        assert status["open"].spent > 0
    finally:
        fo.close()
        redis_server.kill()


# -- the provider drops a stream -----------------------------------------------------------


def _stream_outcome(client: openai.OpenAI) -> tuple[str, Any]:
    try:
        chunks = [
            c.choices[0].delta.content if c.choices else None
            for c in client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
        ]
        return "ok", chunks
    except Exception as exc:
        return "raise", type(exc).__name__


def test_provider_drops_a_stream(devserver: DevServer, tmp_path: Path, raw: openai.OpenAI) -> None:
    fo = finops.FinOps(ledger=tmp_path / "l.duckdb")
    client = _client(fo, devserver)
    for after in (0, 1, 3):
        devserver.inject(Fault.drop_stream(after=after))
        raw_outcome = _stream_outcome(raw)
        devserver.inject(Fault.drop_stream(after=after))
        assert _stream_outcome(client) == raw_outcome
    devserver.inject(Fault.drop_stream(after=2), times=3)  # every attempt (2 retries) cut
    with pytest.raises(openai.APIError):  # a cut JSON body: the SDK's own error
        raw.chat.completions.create(model="gpt-4o", messages=MSG)
    devserver.inject(Fault.drop_stream(after=2), times=3)
    with pytest.raises(openai.APIError):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert _stream_outcome(client)[0] == "ok"  # the fault cleared
    assert fo.flush(timeout_s=30)
    rows = fo.ledger.query(
        "SELECT status, error_type, usage_estimated, stream FROM calls ORDER BY ts_start"
    )
    # streams: 3 dropped (error rows, usage estimated) + 1 fine; the JSON call: 3 attempts
    dropped = [r for r in rows if r[3] and r[0] != "ok"]
    assert len(dropped) == 3, rows
    assert all(r[0] == "error" for r in dropped)
    assert len([r for r in rows if not r[3]]) == 3
    assert all(r[0] == "error" for r in rows if not r[3])
    assert rows[-1][0] == "ok" and len(rows) == 7
    fo.close()


# -- the clock jumps -----------------------------------------------------------------------


class JumpingClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_clock_jumps(devserver: DevServer, tmp_path: Path, raw: openai.OpenAI) -> None:
    clock = JumpingClock()
    fo = finops.FinOps(
        ledger=tmp_path / "l.duckdb",
        clock=clock,
        budgets=[finops.Budget(limit="100", period="day")],
    )
    client = _client(fo, devserver)
    expected = _call(raw)
    stamps = []
    for delta in (
        timedelta(0),
        timedelta(hours=-3),
        timedelta(days=2),
        timedelta(seconds=-0.5),
        timedelta(days=-400),
    ):
        clock.now += delta
        stamps.append(clock.now)
        assert _call(client) == expected
    assert fo.flush(timeout_s=30)
    rows = fo.ledger.query("SELECT ts_start, ts_end, latency_ms FROM calls ORDER BY ts_start")
    assert len(rows) == 5
    assert sorted(r[0] for r in rows) == sorted(stamps)  # each row at the clock's time
    assert all(r[2] >= 0 and r[1] >= r[0] for r in rows)  # latency from a monotonic clock
    # the budget counts per calendar day of the (jumped) clock; no negative spend
    assert all(s.spent >= 0 for s in fo.budget_status())
    fo.close()


# -- the spool directory deleted under a running process -----------------------------------


def test_spool_directory_deleted_under_running_process(
    devserver: DevServer, tmp_path: Path, raw: openai.OpenAI
) -> None:
    fo = finops.FinOps(ledger=tmp_path / "l.duckdb", spool_dir=tmp_path / "spool")
    client = _client(fo, devserver)
    expected = _call(raw)
    assert [_call(client) for _ in range(3)] == [expected] * 3
    assert fo.flush(timeout_s=30)
    shutil.rmtree(tmp_path / "spool")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [_call(client) for _ in range(5)] == [expected] * 5  # unchanged for the user
        fo.flush(timeout_s=3)
        landed = _count(fo)
        fo.ledger.close(timeout_s=1)  # its flush cannot succeed: do not wait 10 s for it
        fo.close()
    reopened = finops.FinOps(ledger=tmp_path / "l.duckdb", spool_dir=tmp_path / "spool")
    reopened.flush(timeout_s=10)
    landed = max(landed, _count(reopened))
    reopened.close()
    if landed < 8:
        pytest.xfail(
            f"finops/ledger: rows appended after the spool directory was deleted are lost "
            f"({landed}/8 landed): the open segment is an unlinked inode. Needed: detect "
            "st_nlink == 0 (or ENOENT on ingest), recreate the directory and re-spool the "
            "segment's rows (open segments O_RDWR so they can be re-read)"
        )
    assert landed == 8


# -- disk full -----------------------------------------------------------------------------


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "small"
    if not _mount_tmpfs(path, "512k"):
        pytest.skip("mounting a tmpfs is not permitted here (see the RLIMIT_FSIZE test)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_tmpfs(
    devserver: DevServer, tmp_path: Path, small_disk: Path, raw: openai.OpenAI
) -> None:
    """The spool on a 512 KiB tmpfs filled to the last byte, then space freed."""
    fo = finops.FinOps(ledger=tmp_path / "l.duckdb", spool_dir=small_disk / "spool")
    client = _client(fo, devserver)
    expected = _call(raw)
    assert fo.flush(timeout_s=30)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # ENOSPC: the disk is full
    finally:
        os.close(fd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [_call(client) for _ in range(5)] == [expected] * 5  # unchanged for the user
        filler.unlink()  # the fault clears
        assert [_call(client) for _ in range(5)] == [expected] * 5
        fo.flush(timeout_s=10)
    landed = _count(fo)
    dropped = fo.ledger.dropped
    fo.close()
    assert landed + dropped == 10  # every row is either in the ledger or counted as dropped
    if landed < 10:
        pytest.xfail(
            f"finops/ledger: {dropped} rows written while the disk was full were dropped "
            "(os.write ENOSPC). Needed: keep unspooled rows in a bounded in-memory queue and "
            "re-spool them when a write succeeds again"
        )


def test_disk_full_rlimit_fsize(devserver: DevServer, tmp_path: Path) -> None:
    """The same fault without root: a worker process whose files may not grow
    (RLIMIT_FSIZE 0, so every spool append fails with EFBIG), then the limit is lifted."""
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "fault_worker.py"),
            "fsize",
            str(tmp_path / "l.duckdb"),
            str(tmp_path / "spool"),
            devserver.openai_base_url,
            "5",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] == 10  # every call returned its answer
    assert result["rows"] + result["dropped"] == 10
    if result["rows"] < 10:
        pytest.xfail(
            f"finops/ledger: {result['dropped']} rows written while files could not grow were "
            "dropped (EFBIG). Needed: a bounded in-memory queue re-spooled on the next write"
        )


# -- calls after close() -------------------------------------------------------------------


def test_calls_after_close_are_metered(
    devserver: DevServer, tmp_path: Path, raw: openai.OpenAI
) -> None:
    """Decision: a call through a wrapped client after ``fo.close()`` still works (never
    broken) and is still metered: its row goes to the spool and the next FinOps on the same
    ledger ingests it."""
    fo = finops.FinOps(ledger=tmp_path / "l.duckdb")
    client = _client(fo, devserver)
    expected = _call(raw)
    _call(client)
    fo.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _call(client) == expected  # the user's call is unchanged
    reopened = finops.FinOps(ledger=tmp_path / "l.duckdb")
    reopened.flush(timeout_s=10)
    landed = _count(reopened)
    reopened.close()
    if landed < 2:
        pytest.xfail(
            "finops/ledger: Ledger.append after close() drops the row ('append after close'). "
            "Needed: append to a fresh spool segment (write + release, no writer thread) so "
            "the next ledger on this file replays it as an orphan; warn once per ledger"
        )
    assert landed == 2
