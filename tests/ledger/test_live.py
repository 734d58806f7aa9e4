"""The live ledger, end to end: worker processes call through the real OpenAI SDK (against
the local server) while analyst processes query the catalog with plain DuckDB.

Acceptance (issue 10): every read succeeds and sees every call that returned at least 2 s
earlier; at the end every call has exactly one row; no lock message anywhere; the same
with one worker killed by ``kill -9`` (its returned calls land through the survivors); a
reader that holds one connection for the whole run sees rows as fast as the others.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from finops.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]

# argv: ledger, base_url, worker name, calls per thread, threads.
# Prints "<id> <epoch seconds>" once the call has returned to the caller.
WORKER = textwrap.dedent(
    """
    import sys, threading, time, openai, finops
    ledger, base_url, name = sys.argv[1], sys.argv[2], sys.argv[3]
    per_thread, threads = int(sys.argv[4]), int(sys.argv[5])
    fo = finops.FinOps(ledger=ledger)
    client = fo.wrap(openai.OpenAI(api_key="k", base_url=base_url, max_retries=0))
    out = threading.Lock()
    def work(t):
        for i in range(per_thread):
            cid = f"{name}-{t}-{i}"
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": cid}],
                finops_tags={"cid": cid},
            )
            with out:
                print(cid, time.time(), flush=True)
            time.sleep(0.04)
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts: t.start()
    for t in ts: t.join()
    fo.close()
    """
)

# argv: ledger, mode ("reconnect" | "hold"), seconds. One JSON line per read.
READER = textwrap.dedent(
    """
    import json, sys, time, duckdb
    path, mode, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    held = duckdb.connect(path, read_only=True) if mode == "hold" else None
    end = time.time() + seconds
    while time.time() < end:
        t0 = time.time()
        try:
            con = held or duckdb.connect(path, read_only=True)
            ids = [r[0] for r in con.execute(
                "SELECT tags['cid'] FROM calls WHERE status = 'ok'").fetchall()]
            if held is None:
                con.close()
            print(json.dumps({"t": t0, "ids": ids}), flush=True)
        except Exception as exc:
            print(json.dumps({"t": t0, "error": repr(exc)}), flush=True)
        time.sleep(max(0.0, 0.5 - (time.time() - t0)))
    """
)


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _returned(lines: str) -> dict[str, float]:
    out = {}
    for line in lines.splitlines():
        cid, _, t = line.partition(" ")
        if t:
            out[cid] = float(t)
    return out


def _check_reads(reads: list[dict[str, object]], returned: dict[str, float], lag_s: float) -> None:
    errors = [r["error"] for r in reads if "error" in r]
    assert not errors, f"{len(errors)} of {len(reads)} reads failed, first: {errors[0]}"
    assert len(reads) >= 8, "the reader did not get to read"
    for read in reads:
        seen = set(read["ids"])  # type: ignore[arg-type]
        due = {c for c, t in returned.items() if t <= float(read["t"]) - lag_s}  # type: ignore[arg-type]
        late = due - seen
        assert not late, (
            f"a read at {read['t']} misses {len(late)} calls returned >= {lag_s}s before"
        )


def _run(devserver, path: Path, *, kill_one: bool) -> None:
    Ledger(path).close()  # the catalog exists before the analysts look
    readers = [_start(READER, str(path), mode, "13") for mode in ("reconnect", "hold")]
    workers = {
        name: _start(WORKER, str(path), devserver.openai_base_url, name, "100", "2")
        for name in ("w0", "w1", "w2")
    }
    killed: dict[str, float] = {}
    if kill_one:
        victim = workers["w1"]
        assert victim.stdout is not None
        lines = []
        while len(lines) < 90:
            line = victim.stdout.readline()
            assert line, "the victim exited early"
            lines.append(line)
        os.kill(victim.pid, signal.SIGKILL)
        rest, err = victim.communicate(timeout=30)
        killed = _returned("".join(lines) + rest)
        assert "lock" not in err.lower(), err
    returned: dict[str, float] = dict(killed)
    for name, proc in workers.items():
        if kill_one and name == "w1":
            continue
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert "lock" not in err.lower(), err
        returned.update(_returned(out))
    reads_by_mode = []
    for proc in readers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "lock" not in err.lower(), err
        reads_by_mode.append([json.loads(line) for line in out.splitlines()])

    # The killed worker's rows are picked up by the survivors' orphan scan (every 5 s), so
    # the 2 s promise is checked for the calls of the live workers.
    live = {c: t for c, t in returned.items() if c not in killed}
    for reads in reads_by_mode:
        _check_reads(reads, live, 2.0)

    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    counts = dict(
        con.execute(
            "SELECT tags['cid'], count(*) FROM calls WHERE status = 'ok' GROUP BY 1"
        ).fetchall()
    )
    [(dups,)] = con.execute("SELECT count(*) - count(DISTINCT row_id) FROM calls").fetchall()
    con.close()
    assert dups == 0
    missing = [c for c in returned if counts.get(c) != 1]
    assert not missing, f"{len(missing)} returned calls without exactly one row: {missing[:5]}"
    if kill_one:
        # Calls in flight at the kill may have a row without having printed: at most one
        # per thread of the victim.
        assert len(returned) <= len(counts) <= len(returned) + 2
        assert len(returned) >= 400 + 90
    else:
        assert len(counts) == len(returned) == 600
    assert not list(Path(str(path) + ".spool").glob("*.jsonl")), "rows left in the spool"


@pytest.mark.slow
def test_three_workers_and_two_analysts(devserver, tmp_path: Path):
    _run(devserver, tmp_path / "live.duckdb", kill_one=False)


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing(devserver, tmp_path: Path):
    _run(devserver, tmp_path / "killed.duckdb", kill_one=True)
