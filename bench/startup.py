"""Start-up cost of finops over the raw SDK: import + ``FinOps(...)`` + ``wrap``.

    python bench/startup.py [--runs 7]

Each measurement runs in a fresh interpreter (serverless functions and CLIs pay this on every
start). The raw run imports ``openai``, builds a client and touches ``chat.completions`` (what
a first call needs); the finops run does the same through ``fo.wrap`` with a new ledger.
Runs alternate (raw, finops, raw, ...) so machine noise hits both; medians are compared.
``startup_overhead`` is the finops run's median total minus the raw run's median total, in
the same run. The ledger opens DuckDB and its catalog on the writer's first cycle that has
work (not in ``FinOps()``), so the line also says in how many runs duckdb was imported by
the time ``wrap`` returned (0 expected). Last line: ``name: value unit (target: X)``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RAW = """
import time, json
t0 = time.perf_counter()
import openai
t1 = time.perf_counter()
client = openai.OpenAI(api_key="sk-bench")
client.chat.completions
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "setup": t2 - t1, "total": t2 - t0}))
"""

WRAPPED = """
import time, json, sys
t0 = time.perf_counter()
import openai
t1 = time.perf_counter()
import finops
fo = finops.FinOps(ledger=sys.argv[1])
t2 = time.perf_counter()
client = fo.wrap(openai.OpenAI(api_key="sk-bench"))
client.chat.completions
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "finops": t2 - t1, "setup": t3 - t2, "total": t3 - t0,
                  "duckdb": "duckdb" in sys.modules}))
fo.close()
"""


def run(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    raw: list[dict[str, float]] = []
    wrapped: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        run(RAW)  # warm the OS file cache for both
        run(WRAPPED, str(Path(tmp) / "warm.duckdb"))
        for i in range(args.runs):
            raw.append(run(RAW))
            wrapped.append(run(WRAPPED, str(Path(tmp) / f"l{i}.duckdb")))

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows) * 1000

    raw_total, fo_total = med(raw, "total"), med(wrapped, "total")
    print(
        f"raw SDK: import {med(raw, 'import'):.0f} ms, client + chat {med(raw, 'setup'):.0f} ms, "
        f"total {raw_total:.0f} ms"
    )
    print(
        f"finops: import openai {med(wrapped, 'import'):.0f} ms, import finops + FinOps() "
        f"{med(wrapped, 'finops'):.0f} ms, wrap + chat {med(wrapped, 'setup'):.0f} ms, "
        f"total {fo_total:.0f} ms; duckdb imported by then: "
        f"{sum(r['duckdb'] for r in wrapped)}/{len(wrapped)} runs"
    )
    print(f"finops_import_and_construct: {med(wrapped, 'finops'):.0f} ms")
    print(f"startup_overhead: {fo_total - raw_total:.0f} ms (target: <= 50)")


if __name__ == "__main__":
    main()
