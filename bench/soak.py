"""Soak: many concurrent async calls for minutes, with injected faults; nothing may leak or
be lost.

    python bench/soak.py [--seconds 300] [--concurrency 50] [--fault-rate 0.01]

The local provider server runs in its own process. ``concurrency`` async workers loop over
mixed calls (OpenAI chat, chat stream, responses, responses stream, embeddings; Anthropic
messages and messages stream), half of them through a raw client and half through a
wrapped one, interleaved so machine noise hits both alike. A share ``fault-rate`` of the
requests carries a fault (500, 429 with retry-after, a dropped or truncated stream, a
garbage body) that the SDKs retry or raise. Every HTTP attempt the wrapped clients make is
counted by an httpx2 event hook on the client finops sends through; at the end the ledger
must hold exactly that many rows.

Printed: RSS at start and end (after a warm-up), rows vs attempts, and the added latency
(median wrapped minus median raw) per tenth of the run. Last lines:
``name: value unit (target: X)``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from overhead import _start_server  # noqa: E402  (the same local server as the overhead bench)

MSG: Any = [{"role": "user", "content": "summarize the budget report in one line"}]
FAULTS = ["500", "429:0.01", "drop_stream:2", "truncated_sse:2", "garbage"]


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _one(clients: dict[str, Any], op: str, fault: str | None) -> None:
    headers = {"x-finops-fault": fault} if fault else None
    oai, ant = clients["openai"], clients["anthropic"]
    if op == "chat":
        await oai.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers=headers)
    elif op == "chat_stream":
        stream = await oai.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True, extra_headers=headers
        )
        async for _ in stream:
            pass
    elif op == "responses":
        await oai.responses.create(model="gpt-4o-mini", input="hi", extra_headers=headers)
    elif op == "responses_stream":
        stream = await oai.responses.create(
            model="gpt-4o-mini", input="hi", stream=True, extra_headers=headers
        )
        async for _ in stream:
            pass
    elif op == "embeddings":
        await oai.embeddings.create(
            model="text-embedding-3-small", input="hello", extra_headers=headers
        )
    elif op == "messages":
        await ant.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=MSG, extra_headers=headers
        )
    else:
        stream = await ant.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=64,
            messages=MSG,
            stream=True,
            extra_headers=headers,
        )
        async for _ in stream:
            pass


OPS = [
    "chat",
    "chat_stream",
    "responses",
    "responses_stream",
    "embeddings",
    "messages",
    "messages_stream",
]


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    import anthropic
    import httpx2
    import openai

    import finops

    proc, url = _start_server()
    tmp = Path(tempfile.mkdtemp(prefix="finops-soak-"))
    attempts = {"wrapped": 0}

    async def count(request: httpx2.Request) -> None:
        attempts["wrapped"] += 1

    fo = finops.FinOps(ledger=tmp / "soak.duckdb")
    limits = httpx2.Limits(max_connections=args.concurrency * 2)
    http = httpx2.AsyncClient(event_hooks={"request": [count]}, limits=limits, timeout=30)
    clients = {
        "raw": {
            "openai": openai.AsyncOpenAI(
                api_key="sk-soak",
                base_url=url + "/v1",
                max_retries=2,
                http_client=httpx2.AsyncClient(limits=limits, timeout=30),
            ),
            "anthropic": anthropic.AsyncAnthropic(
                api_key="sk-ant-soak",
                base_url=url,
                max_retries=2,
                http_client=httpx2.AsyncClient(limits=limits, timeout=30),
            ),
        },
        "wrapped": {
            "openai": fo.wrap(
                openai.AsyncOpenAI(
                    api_key="sk-soak", base_url=url + "/v1", max_retries=2, http_client=http
                )
            ),
            "anthropic": fo.wrap(
                anthropic.AsyncAnthropic(
                    api_key="sk-ant-soak", base_url=url, max_retries=2, http_client=http
                )
            ),
        },
    }
    windows = 10
    lat: list[dict[str, list[float]]] = [{"raw": [], "wrapped": []} for _ in range(windows)]
    errors = {"raw": 0, "wrapped": 0}
    calls = {"raw": 0, "wrapped": 0}
    rng = random.Random(13)

    async def worker(i: int, until: float, start: float, record: bool) -> None:
        kind = "wrapped" if i % 2 else "raw"
        while time.monotonic() < until:
            op = OPS[rng.randrange(len(OPS))]
            fault = FAULTS[rng.randrange(len(FAULTS))] if rng.random() < args.fault_rate else None
            t0 = time.perf_counter()
            try:
                await _one(clients[kind], op, fault)
            except Exception:
                errors[kind] += record
            dt = time.perf_counter() - t0
            if record:
                calls[kind] += 1
                if fault is None:
                    w = min(windows - 1, int((time.monotonic() - start) / args.seconds * windows))
                    lat[w][kind].append(dt)
            # alternate raw/wrapped roles so both see the same mix over time
            kind = "raw" if kind == "wrapped" else "wrapped"

    warnings.simplefilter("ignore")  # MeteringWarnings for the injected garbage bodies
    # One-time loads are not leaks: each op once through each kind first (the tokenizers
    # each endpoint's estimate needs, its price table, the SDK modules it imports), so the
    # start figure does not depend on which ops the random warm-up happened to draw.
    for kind in ("raw", "wrapped"):
        for op in OPS:
            await _one(clients[kind], op, None)
    warm = time.monotonic() + min(5.0, args.seconds / 10)
    await asyncio.gather(*(worker(i, warm, 0, False) for i in range(args.concurrency)))
    # The ledger imports DuckDB and opens its catalog on the writer's first cycle with work
    # (not in FinOps()): let that one-time load finish before the start figure.
    fo.flush(timeout_s=60)
    import gc

    gc.collect()
    rss_start = rss_mb()
    start = time.monotonic()
    await asyncio.gather(
        *(worker(i, start + args.seconds, start, True) for i in range(args.concurrency))
    )
    gc.collect()
    rss_end = rss_mb()
    flushed = fo.flush(timeout_s=60)
    rows = fo.ledger.query("SELECT count(*) FROM calls")[0][0]
    fo.close()
    for group in clients.values():
        for client in group.values():
            await client.close()
    await http.aclose()
    proc.kill()
    proc.wait()
    added, raw_ms = [], []
    for w in lat:
        if w["raw"] and w["wrapped"]:
            added.append((statistics.median(w["wrapped"]) - statistics.median(w["raw"])) * 1e6)
            raw_ms.append(statistics.median(w["raw"]) * 1e3)
    return {
        "rss_start": rss_start,
        "rss_end": rss_end,
        "rows": rows,
        "attempts": attempts["wrapped"],
        "flushed": flushed,
        "calls": calls,
        "errors": errors,
        "added_us": added,
        "raw_ms": raw_ms,
        "seconds": args.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--fault-rate", type=float, default=0.01)
    args = parser.parse_args()
    r = asyncio.run(soak(args))
    total = sum(r["calls"].values())
    print(
        f"soak: {r['seconds']:.0f} s, {args.concurrency} concurrent, {total} calls "
        f"({total / r['seconds']:.0f}/s), fault rate {args.fault_rate:.1%}"
    )
    print(
        f"calls raw/wrapped: {r['calls']['raw']}/{r['calls']['wrapped']}; errors seen by "
        f"the caller raw/wrapped: {r['errors']['raw']}/{r['errors']['wrapped']}"
    )
    print(
        "added latency per tenth of the run (median wrapped - median raw, us): "
        + ", ".join(f"{a:+.0f}" for a in r["added_us"])
    )
    print(
        "median raw call per tenth (ms, for scale): " + ", ".join(f"{m:.1f}" for m in r["raw_ms"])
    )
    growth = r["rss_end"] - r["rss_start"]
    print(f"rss_start: {r['rss_start']:.1f} MiB")
    print(f"rss_end: {r['rss_end']:.1f} MiB")
    print(f"rss_growth: {growth:+.1f} MiB (target: flat, < 50)")
    print(f"ledger_rows: {r['rows']} (target: == attempts)")
    print(f"wrapped_attempts: {r['attempts']} (target: == ledger_rows)")
    print(f"rows_minus_attempts: {r['rows'] - r['attempts']} rows (target: 0)")
    first = r["added_us"][0] if r["added_us"] else float("nan")
    last = r["added_us"][-1] if r["added_us"] else float("nan")
    print(f"added_latency_first_tenth: {first:.0f} us (target: steady)")
    print(f"added_latency_last_tenth: {last:.0f} us (target: steady)")


if __name__ == "__main__":
    main()
