"""No ledger row is lost: kill -9 mid-workload, and a DuckDB file held by another process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import openai

import finops

CHILD = textwrap.dedent(
    """
    import sys, openai, finops
    ledger, base_url = sys.argv[1], sys.argv[2]
    fo = finops.FinOps(ledger=ledger)
    client = fo.wrap(openai.OpenAI(api_key="k", base_url=base_url, max_retries=0))
    i = 0
    while True:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}],
            finops_tags={"i": str(i)},
        )
        print(i, flush=True)   # the call has returned to the caller
        i += 1
    """
)


def test_kill_9_mid_workload_keeps_exactly_one_row_per_returned_call(devserver, tmp_path: Path):
    ledger = tmp_path / "killed.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ledger), devserver.openai_base_url],
        stdout=subprocess.PIPE,
        text=True,
    )
    returned: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while len(returned) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        returned.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(returned) >= 40, "the child did not make enough calls"

    with finops.FinOps(ledger=ledger) as fo:  # restart: replays the spool the child left
        assert fo.flush(timeout_s=30)
        found = dict(
            fo.ledger.query("SELECT tags['i'], count(*) FROM calls WHERE status = 'ok' GROUP BY 1")
        )
    missing = [i for i in returned if found.get(i) != 1]
    assert not missing, f"calls that returned without exactly one row: {missing[:10]}"


HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    sys.stdin.readline()
    con.close()
    """
)


def test_a_catalog_held_read_write_elsewhere_does_not_hold_rows_back(devserver, tmp_path: Path):
    ledger = tmp_path / "locked.duckdb"
    with finops.FinOps(ledger=ledger) as fo:  # create the file and its schema first
        assert fo.flush(timeout_s=30)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ledger)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        fo = finops.FinOps(ledger=ledger)
        client = fo.wrap(openai.OpenAI(api_key="k", base_url=devserver.openai_base_url))
        for i in range(20):
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"locked {i}"}]
            )
            assert reply.choices[0].message.content  # the user's calls are unaffected
        assert fo.flush(timeout_s=5) is True  # writers never need the catalog file
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    count = fo.ledger.query("SELECT count(*) FROM calls WHERE status = 'ok'")[0][0]
    fo.close()
    assert count == 20
