"""A separate process for the fault tests: ``python fault_worker.py MODE ARGS...``.

Modes:
  hold-duckdb LEDGER SECONDS   open the DuckDB ledger file read-write and hold it
  fsize LEDGER SPOOL BASE_URL N  make N calls with RLIMIT_FSIZE at the current spool size
                               (writes that grow a file fail with EFBIG: a full disk
                               for this process), then N more with the limit lifted;
                               prints one JSON line with what the caller saw
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time
from pathlib import Path


def hold_duckdb(ledger: str, seconds: str) -> None:
    import duckdb

    deadline = time.monotonic() + 20
    while True:  # the ledger's writer lets go of the file once it is idle
        try:
            con = duckdb.connect(ledger)
            break
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    con.execute("SELECT 1").fetchall()
    print("holding", flush=True)
    time.sleep(float(seconds))
    con.close()


def fsize(ledger: str, spool: str, base_url: str, n: str) -> None:
    import openai

    import finops

    fo = finops.FinOps(ledger=Path(ledger), spool_dir=Path(spool))
    client = fo.wrap(openai.OpenAI(api_key="sk-fault", base_url=base_url, max_retries=0))
    msgs = [{"role": "user", "content": "hello"}]
    assert fo.flush(timeout_s=30)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    ok = 0
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # no file may grow: "disk full"
    for _ in range(int(n)):
        reply = client.chat.completions.create(model="gpt-4o", messages=msgs)
        ok += reply.choices[0].message.content is not None
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # the fault clears
    for _ in range(int(n)):
        reply = client.chat.completions.create(model="gpt-4o", messages=msgs)
        ok += reply.choices[0].message.content is not None
    flushed = fo.flush(timeout_s=30)
    rows = fo.ledger.query("SELECT count(*) FROM calls")[0][0]
    dropped = fo.ledger.dropped
    fo.close()
    print(json.dumps({"ok": ok, "rows": rows, "flushed": flushed, "dropped": dropped}))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"hold-duckdb": hold_duckdb, "fsize": fsize}[mode](*args)
