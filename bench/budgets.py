"""Per-call budget overhead: one reserve + settle, for each store.

    python bench/budgets.py [--calls 5000]

Each store gets one budget that matches the call (a ``team`` scope, day period in a time
zone), plus a non-matching one, so the check does real matching work. The figure is the
mean latency of one ``reserve`` + ``settle`` in one thread, best of 7 batches (as
``timeit`` does: other load on the machine only ever adds time); the median is printed
as a comment line.
Redis: uses $FINOPS_BENCH_REDIS if set, else starts a throw-away ``redis-server`` on a
free 127.0.0.1 port (skipped with a note if the binary is missing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from finops.budgets import Budget, BudgetManager

TARGETS_US = {"memory": 20, "sqlite": 300, "redis": 1000}


def measure(store: str, calls: int) -> tuple[float, float]:
    budgets = [
        Budget(scope={"team": "search"}, limit="1000000", period="day", tz="Europe/Paris"),
        Budget(scope={"team": "ads"}, limit="10", period="hour"),
    ]
    manager = BudgetManager(budgets, store=store)
    tags = {"team": "search", "feature": "summaries"}
    worst, actual = Decimal("0.004125"), Decimal("0.001890")
    reserve, settle = manager.reserve, manager.settle

    def batch(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            r = reserve(tags=tags, cost=worst, tokens=1500, model="gpt-4o")
            settle(r, cost=actual, tokens=700)
        return (time.perf_counter() - start) / n * 1e6

    batch(max(calls // 10, 100))  # warm up: connections, counters, caches
    batches = [batch(calls) for _ in range(7)]
    manager.close()
    return min(batches), statistics.median(batches)


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per batch (memory)")
    args = parser.parse_args()
    results: dict[str, tuple[float, float] | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["memory"] = measure("memory", args.calls)
        results["sqlite"] = measure(f"sqlite:///{Path(tmp) / 'budgets.db'}", args.calls // 5)
        redis_proc = None
        url = os.environ.get("FINOPS_BENCH_REDIS")
        if url is None:
            started = start_redis(Path(tmp))
            if started is not None:
                redis_proc, url = started
        try:
            results["redis"] = measure(url, args.calls // 10) if url else None
        except ImportError:
            results["redis"] = None
        finally:
            if redis_proc is not None:
                redis_proc.terminate()
                redis_proc.wait()
    for store, value in results.items():
        if value is None:
            print(f"# budget_{store}: skipped (no redis-server binary or redis client)")
    for store, value in results.items():
        if value is not None:
            print(f"# budget_{store}: median of 7 batches {value[1]:.1f} us")
    for store, value in results.items():
        if value is not None:
            print(f"budget_{store}: {value[0]:.1f} us (target: {TARGETS_US[store]} us)")


if __name__ == "__main__":
    main()
