"""Zero overshoot under concurrency, and no budget held forever by a killed process.

Every attempt must end either charged (reserved, then settled at its real cost) or
blocked (BudgetExceeded), the store's settled total must equal the sum of the charges,
and it must never exceed the limit: threads in one process, 4 processes x 8 threads on
one SQLite file, and 4 processes acting as separate hosts on one real Redis server.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from finops.budgets import Budget, BudgetManager
from finops.errors import BudgetExceeded

WORKER = Path(__file__).with_name("race_worker.py")
LIMIT = "5.00"
PROCESSES, THREADS, ATTEMPTS = 4, 8, 40  # 1,280 reserve/settle attempts per race


def spent_and_reserved(store: str) -> tuple[Decimal, Decimal]:
    budget = Budget(scope={"team": "*"}, limit=LIMIT, period="day", tz="Europe/Paris")
    manager = BudgetManager([budget], store=store)
    try:
        rows = [r for r in manager.status() if r.scope_key == "team=race"]
    finally:
        manager.close()
    if not rows:
        return Decimal(0), Decimal(0)
    return rows[0].spent, rows[0].reserved


def check_race(store: str, results: list[dict[str, object]], attempts: int) -> None:
    charged = [Decimal(str(c)) for r in results for c in r["charged"]]  # type: ignore[attr-defined]
    blocked = sum(int(r["blocked"]) for r in results)  # type: ignore[call-overload]
    errors = [e for r in results for e in r["errors"]]  # type: ignore[attr-defined]
    assert errors == []
    assert len(charged) + blocked == attempts  # every call: charged or refused
    assert blocked > 0 and len(charged) > 0  # the race actually hit the limit
    spent, reserved = spent_and_reserved(store)
    assert reserved == 0
    assert spent == sum(charged, Decimal(0))  # nothing lost, nothing double-counted
    assert spent <= Decimal(LIMIT)  # zero overshoot
    # And the budget was really used up: the last refusals were for lack of room.
    assert spent > Decimal(LIMIT) * Decimal("0.9")


def run_processes(store: str, tmp_path: Path) -> list[dict[str, object]]:
    go = tmp_path / "go"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path.cwd()) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "race",
                store,
                LIMIT,
                str(THREADS),
                str(ATTEMPTS),
                str(seed),
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for seed in range(PROCESSES)
    ]
    time.sleep(0.3)  # let them import, then start all at once
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_threads_in_one_process_never_overshoot() -> None:
    budget = Budget(scope={"team": "*"}, limit=LIMIT, period="day", tz="Europe/Paris")
    manager = BudgetManager([budget], store="memory")
    charged: list[Decimal] = []
    blocked = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(32)

    def work(index: int) -> None:
        rng = random.Random(index)
        barrier.wait()
        for _ in range(60):
            worst = Decimal(rng.randint(1_000, 20_000)).scaleb(-6)
            try:
                r = manager.reserve(tags={"team": "race"}, cost=worst, tokens=1)
            except BudgetExceeded:
                with lock:
                    blocked[0] += 1
                continue
            actual = (worst * Decimal(rng.randint(50, 100)) / 100).quantize(Decimal("0.000001"))
            manager.settle(r, cost=actual, tokens=1)
            with lock:
                charged.append(actual)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    (row,) = manager.status()
    assert len(charged) + blocked[0] == 32 * 60 and blocked[0] > 0
    assert row.reserved == 0 and row.spent == sum(charged, Decimal(0))
    assert row.spent <= Decimal(LIMIT)


@pytest.mark.slow
def test_sqlite_four_processes_eight_threads(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'budgets.db'}"
    results = run_processes(store, tmp_path)
    check_race(store, results, PROCESSES * THREADS * ATTEMPTS)


@pytest.mark.slow
@pytest.mark.redis
def test_redis_four_hosts_eight_threads(redis_url: str, tmp_path: Path) -> None:
    results = run_processes(redis_url, tmp_path)
    check_race(redis_url, results, PROCESSES * THREADS * ATTEMPTS)


def kill9_leaves_no_hold(store: str) -> None:
    ttl = 2.5
    env = {
        **os.environ,
        "PYTHONPATH": str(Path.cwd()) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), "hold", store, LIMIT, str(ttl)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        held_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    budget = Budget(scope={"team": "*"}, limit=LIMIT, period="day", tz="Europe/Paris")
    manager = BudgetManager([budget], store=store)
    # The dead process's hold still counts until its TTL...
    assert spent_and_reserved(store) == (0, Decimal(LIMIT))
    with pytest.raises(BudgetExceeded) as info:
        manager.reserve(tags={"team": "race"}, cost=Decimal("0.01"), tokens=1)
    assert info.value.reserved == Decimal(LIMIT)
    # ...and not one moment past it.
    time.sleep(max(0.0, ttl + 0.1 - (time.monotonic() - held_at)))
    assert spent_and_reserved(store) == (0, 0)
    r = manager.reserve(tags={"team": "race"}, cost=Decimal(LIMIT), tokens=1)
    manager.settle(r, cost=Decimal("1.25"), tokens=1)
    assert spent_and_reserved(store) == (Decimal("1.25"), 0)
    manager.close()


@pytest.mark.slow
def test_kill9_sqlite_hold_expires(tmp_path: Path) -> None:
    kill9_leaves_no_hold(f"sqlite:///{tmp_path / 'budgets.db'}")


@pytest.mark.slow
@pytest.mark.redis
def test_kill9_redis_hold_expires(redis_url: str) -> None:
    kill9_leaves_no_hold(redis_url)
