"""Exact cache hits for Gemini and Bedrock vs the raw SDK call they replace.

    python bench/cache_wires.py [--calls 200] [--rounds 5]

Each round times ``--calls`` raw SDK calls to the local server (``finops.DevServer``) and
``--calls`` cache hits through the wrapped client (memory store), interleaved round by round
on the same machine; the figures are the medians over the rounds. Gemini: google-genai
``models.generate_content`` (JSON) and ``generate_content_stream`` (SSE synthesized from the
stored JSON). Bedrock: boto3 ``converse`` and ``converse_stream`` (event-stream frames from
a ``before-send`` handler). A ratio below 1 means a hit answers faster than the provider
call it replaces (here a loopback server answering in well under a millisecond, so the
ratio is a worst case: real providers take hundreds of milliseconds).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from google import genai

import finops
from finops.devserver import DevServer, bedrock_client

MODEL = "gemini-2.5-flash"
SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MSG = [{"role": "user", "content": [{"text": "What does the finops ledger record?"}]}]


def per_call_ms(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1000


def bedrock(server: DevServer) -> object:
    return bedrock_client(server.url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with DevServer(log_requests=False) as server, tempfile.TemporaryDirectory() as tmp:
        fo = finops.FinOps(ledger=Path(tmp) / "l.duckdb", cache=finops.Cache(store="memory"))
        raw_g = genai.Client(api_key="k", http_options={"base_url": server.url})  # type: ignore[arg-type]
        hit_g = fo.wrap(genai.Client(api_key="k", http_options={"base_url": server.url}))  # type: ignore[arg-type]
        raw_b = bedrock(server)
        hit_b = fo.wrap(bedrock(server))
        prompt = "What does the finops ledger record?"

        def drain(stream: object) -> None:
            for _ in stream:  # type: ignore[attr-defined]
                pass

        cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "gemini_generate_content": (
                lambda: raw_g.models.generate_content(model=MODEL, contents=prompt),
                lambda: hit_g.models.generate_content(model=MODEL, contents=prompt),  # type: ignore[attr-defined]
            ),
            "gemini_generate_content_stream": (
                lambda: drain(raw_g.models.generate_content_stream(model=MODEL, contents=prompt)),
                lambda: drain(hit_g.models.generate_content_stream(model=MODEL, contents=prompt)),  # type: ignore[attr-defined]
            ),
            "bedrock_converse": (
                lambda: raw_b.converse(modelId=SONNET, messages=MSG),  # type: ignore[attr-defined]
                lambda: hit_b.converse(modelId=SONNET, messages=MSG),  # type: ignore[attr-defined]
            ),
            "bedrock_converse_stream": (
                lambda: drain(raw_b.converse_stream(modelId=SONNET, messages=MSG)["stream"]),  # type: ignore[attr-defined]
                lambda: drain(hit_b.converse_stream(modelId=SONNET, messages=MSG)["stream"]),  # type: ignore[attr-defined]
            ),
        }
        for raw, hit in cases.values():  # warm up, and store the entries (one miss each)
            raw()
            hit()
        results: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cases}
        for _ in range(args.rounds):
            for name, (raw, hit) in cases.items():
                results[name][0].append(per_call_ms(raw, args.calls))
                results[name][1].append(per_call_ms(hit, args.calls))
        fo.close()
    for name, (raw_ms, hit_ms) in results.items():
        r, h = statistics.median(raw_ms), statistics.median(hit_ms)
        print(f"# {name}: raw {r:.3f} ms, hit {h:.3f} ms (medians of {args.rounds} rounds)")
    for name, (raw_ms, hit_ms) in results.items():
        ratio = statistics.median(hit_ms) / statistics.median(raw_ms)
        print(f"{name}_exact_hit_vs_raw_call: {ratio:.2f} ratio (target: < 1)")


if __name__ == "__main__":
    main()
