"""The ledger across real processes: kill -9, a file held by another process, two writers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from finops.ledger import Ledger

# The child appends rows and prints each row_id once append() has returned.
APPENDER = """
import sys, time
from conftest import make_row
from finops.ledger import Ledger
path, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ledger = Ledger(path, flush_interval_s=0.01)
i = 0
while n < 0 or i < n:
    ledger.append(make_row(i, row_id=f"{prefix}-{i}"))
    print(f"{prefix}-{i}", flush=True)
    i += 1
    if i % 50 == 0:
        time.sleep(0.001)
if len(sys.argv) > 4 and sys.argv[4] == "no-close":
    sys.exit(0)  # atexit must flush
ledger.close()
"""


def appender(spawn, *args: str, **popen: object) -> subprocess.Popen[str]:
    tests = str(Path(__file__).parent)
    script = f"import sys; sys.path.insert(0, {tests!r})\n" + APPENDER
    return spawn(script, *args, **popen)  # type: ignore[no-any-return]


def test_kill_9_mid_workload_keeps_every_returned_row_exactly_once(tmp_path: Path, spawn):
    path = tmp_path / "killed.duckdb"
    proc = appender(spawn, str(path), "k", "-1", stdout=subprocess.PIPE)
    printed: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while len(printed) < 3000 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        printed.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(printed) >= 3000, "the child did not append enough rows"
    spool = Path(str(path) + ".spool")
    assert list(spool.glob("*.jsonl")), "expected the killed child to leave a spool behind"

    with Ledger(path) as ledger:  # restart on the same path and spool: replays the leftovers
        assert ledger.flush(timeout_s=30)
        counts = dict(ledger.query("SELECT row_id, count(*) FROM calls GROUP BY 1"))
    assert not [r for r in printed if counts.get(r) != 1]
    assert all(n == 1 for n in counts.values())
    assert not list(spool.glob("*.jsonl"))


HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: DuckDB locks the file for this process
print("holding", flush=True)
sys.stdin.readline()
con.close()
"""


def test_catalog_held_read_write_by_an_analyst_does_not_stop_writers(
    tmp_path: Path, spawn, make_row
):
    path = tmp_path / "locked.duckdb"
    Ledger(path).close()  # create the catalog and its schema
    # `duckdb finops.duckdb` in the CLI opens the catalog read-write and holds it.
    holder = spawn(HOLDER, str(path), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"

    ledger = Ledger(path, flush_interval_s=0.05)
    timings = []
    for i in range(2000):
        t0 = time.perf_counter()
        ledger.append(make_row(i))
        timings.append(time.perf_counter() - t0)
    assert ledger.flush(timeout_s=10) is True  # nothing waits for the holder
    assert ledger.last_error is None
    timings.sort()
    assert timings[len(timings) // 2] < 0.001  # append stayed on the fast path
    [(n, distinct)] = ledger.query("SELECT count(*), count(DISTINCT row_id) FROM calls")
    assert n == distinct == 2000
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=10)
    ledger.close()


def test_two_processes_write_one_ledger(tmp_path: Path, spawn):
    path = tmp_path / "shared.duckdb"
    Ledger(path).close()
    procs = [appender(spawn, str(path), name, "3000", stdout=subprocess.DEVNULL) for name in "ab"]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    with Ledger(path) as ledger:
        assert ledger.flush(timeout_s=30)
        counts = dict(ledger.query("SELECT substr(row_id, 1, 1), count(*) FROM calls GROUP BY 1"))
        [(dups,)] = ledger.query(
            "SELECT count(*) FROM (SELECT row_id FROM calls GROUP BY 1 HAVING count(*) > 1)"
        )
    assert counts == {"a": 3000, "b": 3000}
    assert dups == 0


@pytest.mark.parametrize("mode", ["no-close"])
def test_atexit_flushes_an_unclosed_ledger(tmp_path: Path, spawn, mode: str):
    path = tmp_path / "exit.duckdb"
    proc = appender(spawn, str(path), "x", "500", mode, stdout=subprocess.DEVNULL)
    assert proc.wait(timeout=60) == 0
    spool = Path(str(path) + ".spool")
    assert not list(spool.glob("*.jsonl"))  # flushed at exit, nothing left to replay
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT count(*) FROM calls").fetchone() == (500,)
    con.close()
