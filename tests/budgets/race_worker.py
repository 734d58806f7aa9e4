"""A worker process for the budget race and crash tests (run as a script, not collected).

python race_worker.py race STORE LIMIT THREADS ATTEMPTS SEED GO_FILE
    fire THREADS x ATTEMPTS reserve/settle cycles at one budget once GO_FILE exists;
    print one JSON line: {"charged": [...], "blocked": n, "errors": [...]}
python race_worker.py hold STORE LIMIT TTL
    reserve the whole limit, print "held", then sleep until killed
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from decimal import Decimal

from finops.budgets import Budget, BudgetManager
from finops.errors import BudgetExceeded

TAGS = {"team": "race"}


def race(store: str, limit: str, threads: int, attempts: int, seed: int, go: str) -> None:
    budget = Budget(scope={"team": "*"}, limit=limit, period="day", tz="Europe/Paris")
    manager = BudgetManager([budget], store=store)
    charged: list[str] = []
    blocked = 0
    errors: list[str] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        nonlocal blocked
        rng = random.Random(seed * 1000 + index)
        for _ in range(attempts):
            # Worst case between 0.001 and 0.020 USD, in micro-dollars.
            worst = Decimal(rng.randint(1_000, 20_000)).scaleb(-6)
            try:
                r = manager.reserve(tags=TAGS, cost=worst, tokens=1)
            except BudgetExceeded:
                with lock:
                    blocked += 1
                continue
            except Exception as exc:  # reported, and the test fails on it
                with lock:
                    errors.append(repr(exc))
                continue
            if rng.random() < 0.3:
                time.sleep(0.0005)  # keep several calls in flight at once
            actual = (worst * Decimal(rng.randint(50, 100)) / 100).quantize(Decimal("0.000001"))
            manager.settle(r, cost=actual, tokens=1)
            with lock:
                charged.append(str(actual))

    while not os.path.exists(go):
        time.sleep(0.005)
    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    manager.close()
    print(json.dumps({"charged": charged, "blocked": blocked, "errors": errors}), flush=True)


def hold(store: str, limit: str, ttl: float) -> None:
    budget = Budget(
        scope={"team": "*"}, limit=limit, period="day", tz="Europe/Paris", reservation_ttl_s=ttl
    )
    manager = BudgetManager([budget], store=store)
    manager.reserve(tags=TAGS, cost=Decimal(limit), tokens=1)
    print("held", flush=True)
    time.sleep(120)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "race":
        race(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), args[5])
    else:
        hold(args[0], args[1], float(args[2]))
