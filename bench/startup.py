"""Start-up cost of finops over the raw SDK: import + ``FinOps(...)`` + ``wrap``, then the
first call.

    python bench/startup.py [--runs 11] [--latency 0.0] [--no-bytecode] [--budget]

Each measurement runs in a fresh interpreter (serverless functions and CLIs pay this on every
start). The raw run imports ``openai``, builds a client and touches ``chat.completions`` (what
a first call needs); the finops run does the same through ``fo.wrap`` with a new ledger.
Runs alternate (raw, finops, raw, ...) so machine noise hits both; medians are compared.
``startup_overhead`` is the finops run's median total minus the raw run's median total, in
the same run. The ledger opens DuckDB and its catalog on the writer's first cycle that has
work (not in ``FinOps()``), so the line also says in how many runs duckdb was imported by
the time ``wrap`` returned (0 expected).

Bytecode: an installed package has its ``.pyc`` files, so the runs share a private
``PYTHONPYCACHEPREFIX`` that the two warm runs fill (for openai and finops alike; this also
overrides ``PYTHONDONTWRITEBYTECODE``). ``--no-bytecode`` measures the compile-every-start
case instead (no cache prefix, ``PYTHONDONTWRITEBYTECODE=1``).

Then each run makes one chat call to the local provider server, answered after ``--latency``
seconds (0: loopback, the worst case for finops, whose first row waits for the tokenizer and
the price table that were loading while the request was out; a real provider takes longer
than that load). ``first_call_overhead`` compares the time from the start to the end of that
call. CPU figures are the process's CPU time (all threads) at the same marks: under machine
load they are steadier than wall time. ``--budget`` adds a USD budget to the finops run (the
configuration that loads the tokenizer at ``FinOps()``, since every call is estimated before
it is sent). Last line: ``name: value unit (target: X)``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from overhead import _start_server  # noqa: E402  (the same local server as the overhead bench)

RAW = """
import time, json, sys
cpu = time.process_time
t0, c0 = time.perf_counter(), cpu()
import openai
t1 = time.perf_counter()
client = openai.OpenAI(api_key="sk-bench", base_url=sys.argv[1] + "/v1")
client.chat.completions
t2, c2 = time.perf_counter(), cpu()
headers = {"x-finops-fault": "slow:" + sys.argv[3]} if float(sys.argv[3]) else None
client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                               extra_headers=headers)
t3, c3 = time.perf_counter(), cpu()
print(json.dumps({"import": t1 - t0, "setup": t2 - t1, "total": t2 - t0, "cpu": c2 - c0,
                  "call": t3 - t0, "call_cpu": c3 - c0}))
"""

WRAPPED = """
import time, json, sys
cpu = time.process_time
t0, c0 = time.perf_counter(), cpu()
import openai
t1 = time.perf_counter()
import finops
budgets = [finops.Budget(limit="1000", period="day")] if sys.argv[4] == "1" else []
fo = finops.FinOps(ledger=sys.argv[2], budgets=budgets)
t2 = time.perf_counter()
client = fo.wrap(openai.OpenAI(api_key="sk-bench", base_url=sys.argv[1] + "/v1"))
client.chat.completions
t3, c3 = time.perf_counter(), cpu()
duckdb = "duckdb" in sys.modules
headers = {"x-finops-fault": "slow:" + sys.argv[3]} if float(sys.argv[3]) else None
client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                               extra_headers=headers)
t4, c4 = time.perf_counter(), cpu()
print(json.dumps({"import": t1 - t0, "finops": t2 - t1, "setup": t3 - t2, "total": t3 - t0,
                  "cpu": c3 - c0, "call": t4 - t0, "call_cpu": c4 - c0, "duckdb": duckdb}))
fo.close()
"""


def run(code: str, env: dict[str, str], *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--no-bytecode", action="store_true")
    parser.add_argument("--budget", action="store_true")
    args = parser.parse_args()
    raw: list[dict[str, float]] = []
    wrapped: list[dict[str, float]] = []
    proc, url = _start_server()
    lat, budget = str(args.latency), "1" if args.budget else "0"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            if args.no_bytecode:
                env["PYTHONDONTWRITEBYTECODE"] = "1"
                env.pop("PYTHONPYCACHEPREFIX", None)
            else:
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pyc")
            for i in range(2):  # warm the OS file cache (and the bytecode cache) for both
                run(RAW, env, url, "", lat)
                run(WRAPPED, env, url, str(Path(tmp) / f"warm{i}.duckdb"), lat, budget)
            for i in range(args.runs):
                raw.append(run(RAW, env, url, "", lat))
                wrapped.append(run(WRAPPED, env, url, str(Path(tmp) / f"l{i}.duckdb"), lat, budget))
    finally:
        proc.kill()
        proc.wait()

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows) * 1000

    raw_total, fo_total = med(raw, "total"), med(wrapped, "total")
    print(
        f"raw SDK: import {med(raw, 'import'):.0f} ms, client + chat {med(raw, 'setup'):.0f} ms, "
        f"total {raw_total:.0f} ms (CPU {med(raw, 'cpu'):.0f} ms); first call done at "
        f"{med(raw, 'call'):.0f} ms (CPU {med(raw, 'call_cpu'):.0f} ms)"
    )
    print(
        f"finops: import openai {med(wrapped, 'import'):.0f} ms, import finops + FinOps() "
        f"{med(wrapped, 'finops'):.0f} ms, wrap + chat {med(wrapped, 'setup'):.0f} ms, "
        f"total {fo_total:.0f} ms (CPU {med(wrapped, 'cpu'):.0f} ms); first call done at "
        f"{med(wrapped, 'call'):.0f} ms (CPU {med(wrapped, 'call_cpu'):.0f} ms); duckdb "
        f"imported by then: {sum(r['duckdb'] for r in wrapped)}/{len(wrapped)} runs"
    )
    print(
        f"config: {args.runs} runs, provider latency {args.latency * 1000:.0f} ms, "
        f"{'no bytecode cache' if args.no_bytecode else 'bytecode cached'}"
        f"{', one budget' if args.budget else ''}"
    )
    print(f"finops_import_and_construct: {med(wrapped, 'finops'):.0f} ms")
    print(f"startup_overhead_cpu: {med(wrapped, 'cpu') - med(raw, 'cpu'):.0f} ms")
    print(f"first_call_overhead: {med(wrapped, 'call') - med(raw, 'call'):.0f} ms")
    print(f"first_call_overhead_cpu: {med(wrapped, 'call_cpu') - med(raw, 'call_cpu'):.0f} ms")
    print(f"startup_overhead: {fo_total - raw_total:.0f} ms (target: <= 50)")


if __name__ == "__main__":
    main()
