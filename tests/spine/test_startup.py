"""Start-up: ``FinOps(...)`` + ``wrap`` load nothing a first call does not need, the tokenizer
loads while the first request is on the network, and rows are the same either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from finops.devserver import DevServer
from finops.intercept.pool import _Background

ROOT = Path(__file__).resolve().parents[2]

# argv: ledger path, openai base url, mode ("lazy" | "preloaded" | "budget"), fault header
_SCRIPT = """
import json, sys, threading, time
import openai
mode = sys.argv[3]
if mode == "preloaded":
    from finops.tokens.encodings import get_encoding
    get_encoding("o200k_base")
import finops
from finops.tokens import encodings
budgets = [finops.Budget(limit="1000", period="day")] if mode == "budget" else []
fo = finops.FinOps(ledger=sys.argv[1], budgets=budgets)
client = fo.wrap(openai.OpenAI(api_key="sk-test-secret", base_url=sys.argv[2]))
client.chat.completions
out = {
    "threads": sorted(t.name for t in threading.enumerate()),
    "loaded_at_wrap": encodings.is_loaded("o200k_base"),
    "modules_at_wrap": sorted(m for m in ("duckdb", "finops.budgets.manager",
        "finops.tokens.estimate", "finops.pricing.book", "tiktoken") if m in sys.modules),
}
loaded = []
def watch():
    while not encodings.is_loaded("o200k_base"):
        time.sleep(0.01)
    loaded.append(time.monotonic())
threading.Thread(target=watch, daemon=True).start()
headers = {"x-finops-fault": sys.argv[4]} if sys.argv[4] else None
start = time.monotonic()
client.chat.completions.create(model="gpt-4o", extra_headers=headers,
    messages=[{"role": "user", "content": "summarize the budget report in one line"}])
delay = float(sys.argv[4].partition(":")[2] or 0)
out["loaded_before_reply"] = bool(loaded) and loaded[0] < start + delay
assert fo.flush(timeout_s=30)
cols = ["est_input_tokens", "est_output_tokens_max", "est_cost_max", "est_exact",
        "input_tokens", "output_tokens", "cost_total", "status"]
row = fo.ledger.query("SELECT " + ", ".join(cols) + " FROM calls")
out["row"] = [str(v) for v in row[0]]
fo.close()
print(json.dumps(out))
"""


def _run(tmp_path: Path, server: DevServer, mode: str, fault: str = "") -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _SCRIPT,
            str(tmp_path / f"{mode}.duckdb"),
            server.openai_base_url,
            mode,
            fault,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_construct_and_wrap_load_nothing_heavy(tmp_path: Path, devserver: DevServer) -> None:
    lazy = _run(tmp_path, devserver, "lazy")
    assert "finops-warmup" not in lazy["threads"]
    assert not lazy["loaded_at_wrap"]
    assert lazy["modules_at_wrap"] == []
    # The row of the first call holds the same estimate as with a tokenizer loaded up front.
    preloaded = _run(tmp_path, devserver, "preloaded")
    assert lazy["row"] == preloaded["row"]
    assert lazy["row"][0] not in ("None", "0") and lazy["row"][3] == "True"


def test_the_first_call_loads_the_tokenizer_while_on_the_network(
    tmp_path: Path, devserver: DevServer
) -> None:
    # A provider that takes 3 s to answer: the tokenizer is in before the reply is.
    slow = _run(tmp_path, devserver, "lazy", fault="slow:3")
    assert slow["loaded_before_reply"]
    assert not slow["loaded_at_wrap"]


def test_budgets_load_the_tokenizer_at_construction(tmp_path: Path, devserver: DevServer) -> None:
    budget = _run(tmp_path, devserver, "budget")
    # Every call is estimated before it is sent: the load starts in FinOps() (or is done).
    assert "finops-warmup" in budget["threads"] or budget["loaded_at_wrap"]


def test_background_build_falls_back_to_the_caller() -> None:
    calls: list[str] = []

    def flaky() -> str:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise OSError("CA bundle missing")
        return "pool"

    value = _Background(flaky)
    assert value.get() == "pool"  # the thread failed; the caller built it
    assert calls[0] == "finops-transport" and calls[1] != "finops-transport"
    assert value.get() == "pool" and len(calls) == 2

    def broken() -> str:
        raise OSError("CA bundle missing")

    failing = _Background(broken)
    with pytest.raises(OSError, match="CA bundle"):  # raised into the first request
        failing.get()
