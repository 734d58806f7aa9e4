"""Added latency of finops per call, against the raw SDK, in one run.

    python bench/overhead.py [--calls 2000] [--no-litellm]

The local provider server runs in a separate process (so it does not compete with the
measured process for the GIL). Each contender runs in its own process against that one
server: finops (OpenAI chat, non-stream and stream; Gemini through ``google-genai`` and
Bedrock through ``boto3`` when installed) and, when ``litellm`` is importable, LiteLLM's
``completion()`` on the same endpoint. In each process raw-SDK and contender calls are
interleaved (ABAB...) so machine noise hits both alike; the added latency is the difference
of the two distributions at the same percentile. ``*_same_wire`` compares the wrapped
stream with a raw stream that asks for usage too (``stream_options.include_usage``, what
finops adds), i.e. the same bytes on the wire. Also measured: the ledger's ingest rate and
the cold ``import finops`` time. Last lines: ``name: value unit (target: X)``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from finops.devserver import serve_forever; serve_forever(host='127.0.0.1', port={port})",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # the server runs this checkout's finops
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the local provider server did not start")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _paired(
    raw: Callable[[], object], wrapped: Callable[[], object], n: int
) -> tuple[list[float], list[float]]:
    for _ in range(50):  # warm up connections, caches, the price table, the tokenizer
        raw()
        wrapped()
    a: list[float] = []
    b: list[float] = []
    for i in range(n):
        order = (raw, wrapped) if i % 2 == 0 else (wrapped, raw)
        for fn in order:
            t0 = time.perf_counter()
            fn()
            dt = (time.perf_counter() - t0) * 1e6
            (a if fn is raw else b).append(dt)
    return a, b


def _ingest_rate(n: int) -> float:
    """Rows per second from spool to DuckDB: append n realistic rows, time the flush."""
    from datetime import UTC, datetime
    from decimal import Decimal

    import finops
    from finops.ledger.row import LedgerRow

    tmp = Path(tempfile.mkdtemp(prefix="finops-ingest-"))
    ledger = finops.Ledger(tmp / "ingest.duckdb", flush_interval_s=3600)
    now = datetime.now(UTC)
    for i in range(n):
        ledger.append(
            LedgerRow(
                row_id=f"{i:032x}",
                call_id=f"{i:032x}",
                attempt=1,
                ts_start=now,
                ts_end=now,
                latency_ms=12.5,
                provider="openai",
                endpoint="chat.completions",
                status="ok",
                requested_model="gpt-4o",
                served_model="gpt-4o-2024-08-06",
                http_status=200,
                input_tokens=1200,
                cache_read_tokens=1024,
                output_tokens=300,
                cost_input=Decimal("0.00044"),
                cost_cache_read=Decimal("0.00128"),
                cost_output=Decimal("0.003"),
                cost_total=Decimal("0.00472"),
                price_version="bench",
                pricing_status="priced",
                tags={"team": "search", "feature": f"f{i % 7}"},
                request_hash="ab" * 32,
            )
        )
    t0 = time.perf_counter()
    assert ledger.flush(timeout_s=300)
    rate = n / (time.perf_counter() - t0)
    ledger.close()
    return rate


def _import_time_ms(runs: int = 7) -> float:
    """Cold ``import finops`` in a fresh interpreter, timed inside it (best of ``runs``)."""
    code = "import time; t = time.perf_counter(); import finops; print(time.perf_counter() - t)"
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        )
        samples.append(float(out.stdout.strip()) * 1000)
    return min(samples)


def _other_providers(
    url: str, fo: object
) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """Gemini (google-genai) and Bedrock (boto3) against the same server, if installed."""
    out: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {}
    try:
        from google import genai
    except ImportError:
        genai = None  # type: ignore[assignment]
    if genai is not None:
        g_raw = genai.Client(api_key="bench", http_options={"base_url": url})
        g_fo = fo.wrap(genai.Client(api_key="bench", http_options={"base_url": url}))  # type: ignore[attr-defined]
        config = {"max_output_tokens": 16}

        def gen(c: object) -> Callable[[], object]:
            return lambda: c.models.generate_content(  # type: ignore[attr-defined]
                model="gemini-2.0-flash", contents="Say hello to the benchmark.", config=config
            )

        def gen_stream(c: object) -> Callable[[], object]:
            return lambda: list(
                c.models.generate_content_stream(  # type: ignore[attr-defined]
                    model="gemini-2.0-flash", contents="Say hello to the benchmark.", config=config
                )
            )

        out["gemini_non_stream"] = (gen(g_raw), gen(g_fo))
        out["gemini_stream"] = (gen_stream(g_raw), gen_stream(g_fo))
    try:
        from finops.devserver import bedrock_client

        b_raw, b_fo = bedrock_client(url), fo.wrap(bedrock_client(url))  # type: ignore[attr-defined]
    except ImportError:  # boto3 not installed
        return out
    msgs = [{"role": "user", "content": [{"text": "Say hello to the benchmark."}]}]

    def converse(c: object) -> Callable[[], object]:
        return lambda: c.converse(  # type: ignore[attr-defined]
            modelId="us.amazon.nova-lite-v1:0", messages=msgs, inferenceConfig={"maxTokens": 16}
        )

    def converse_stream(c: object) -> Callable[[], object]:
        def run() -> object:
            reply = c.converse_stream(  # type: ignore[attr-defined]
                modelId="us.amazon.nova-lite-v1:0",
                messages=msgs,
                inferenceConfig={"maxTokens": 16},
            )
            return list(reply["stream"])

        return run

    out["bedrock_converse"] = (converse(b_raw), converse(b_fo))
    out["bedrock_converse_stream"] = (converse_stream(b_raw), converse_stream(b_fo))
    return out


def _finops_contender(url: str, calls: int) -> dict[str, list[float]]:
    """finops' figures: (median, p99) added latency per workload, measured in this process."""
    import openai

    import finops

    tmp = Path(tempfile.mkdtemp(prefix="finops-bench-"))
    raw = openai.OpenAI(api_key="bench", base_url=url + "/v1", max_retries=0)
    fo = finops.FinOps(ledger=tmp / "bench.duckdb")
    wrapped = fo.wrap(openai.OpenAI(api_key="bench", base_url=url + "/v1", max_retries=0))
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello to the benchmark."},
    ]

    def call(client: openai.OpenAI) -> Callable[[], object]:
        return lambda: client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            max_tokens=16,  # type: ignore[arg-type]
        )

    def stream(client: openai.OpenAI, **extra: object) -> Callable[[], object]:
        return lambda: list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                max_tokens=16,
                stream=True,  # type: ignore[arg-type]
                **extra,  # type: ignore[arg-type]
            )
        )

    results: dict[str, list[float]] = {}
    workloads: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("non_stream", call(raw), call(wrapped)),
        ("stream", stream(raw), stream(wrapped)),
        (
            "stream_same_wire",
            stream(raw, stream_options={"include_usage": True}),
            stream(wrapped),
        ),
    ]
    # No finops here: what include_usage (which finops adds) costs the raw SDK itself (the
    # server's extra event and its "usage": null on every chunk) - the share of "stream"
    # that is the local server's and the wire's, not finops'.
    unmetered = {"raw_include_usage"}
    workloads.append(
        (
            "raw_include_usage",
            stream(raw),
            stream(raw, stream_options={"include_usage": True}),
        )
    )
    workloads += [(n, r, w) for n, (r, w) in _other_providers(url, fo).items()]
    for name, raw_fn, wrapped_fn in workloads:
        a, b = _paired(raw_fn, wrapped_fn, calls)
        results[name] = [
            statistics.median(b) - statistics.median(a),
            _pct(b, 0.99) - _pct(a, 0.99),
        ]
        print(
            f"finops {name}: raw median {statistics.median(a):.0f} us, wrapped median "
            f"{statistics.median(b):.0f} us, raw p99 {_pct(a, 0.99):.0f} us, "
            f"wrapped p99 {_pct(b, 0.99):.0f} us",
            file=sys.stderr,
        )
    fo.flush()
    rows = fo.ledger.query("SELECT count(*) FROM calls")[0][0]
    expected = (calls + 50) * sum(1 for name, *_ in workloads if name not in unmetered)
    print(f"ledger rows written: {rows} (expected {expected})", file=sys.stderr)
    results["rows_missing"] = [float(expected - rows), 0.0]
    fo.close()
    return results


def _litellm_contender(url: str, calls: int) -> dict[str, list[float]]:
    """LiteLLM's ``completion()`` against the same server, beside the raw OpenAI SDK."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from the internet
    import litellm
    import openai

    raw = openai.OpenAI(api_key="bench", base_url=url + "/v1", max_retries=0)
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello to the benchmark."},
    ]
    common = {
        "model": "openai/gpt-4o-mini",
        "api_base": url + "/v1",
        "api_key": "bench",
        "messages": messages,
        "max_tokens": 16,
        "max_retries": 0,
    }

    def lite(stream: bool) -> Callable[[], object]:
        if stream:
            return lambda: list(litellm.completion(stream=True, **common))
        return lambda: litellm.completion(**common)

    def sdk(stream: bool) -> Callable[[], object]:
        if stream:
            return lambda: list(
                raw.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, max_tokens=16, stream=True  # type: ignore[arg-type]
                )
            )
        return lambda: raw.chat.completions.create(
            model="gpt-4o-mini", messages=messages, max_tokens=16  # type: ignore[arg-type]
        )

    results: dict[str, list[float]] = {}
    for name, stream in (("non_stream", False), ("stream", True)):
        a, b = _paired(sdk(stream), lite(stream), calls)
        results[name] = [
            statistics.median(b) - statistics.median(a),
            _pct(b, 0.99) - _pct(a, 0.99),
        ]
        print(
            f"litellm {name}: raw median {statistics.median(a):.0f} us, litellm median "
            f"{statistics.median(b):.0f} us",
            file=sys.stderr,
        )
    return results


def _contender(kind: str, url: str, calls: int) -> dict[str, list[float]] | None:
    """Run one contender in a fresh interpreter (its own process, GIL and imports)."""
    out = subprocess.run(
        [sys.executable, __file__, "--contender", kind, "--url", url, "--calls", str(calls)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if out.returncode != 0:
        print(f"{kind}: the contender process failed (exit {out.returncode})", file=sys.stderr)
        return None
    return json.loads(out.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM even if installed")
    parser.add_argument("--contender", choices=("finops", "litellm"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.contender is not None:  # a child process: measure, print one JSON line
        measure = _finops_contender if args.contender == "finops" else _litellm_contender
        print(json.dumps(measure(args.url, args.calls)))
        return

    try:
        import litellm  # noqa: F401

        with_litellm = not args.no_litellm
    except ImportError:
        with_litellm = False

    proc, url = _start_server()
    try:
        results = _contender("finops", url, args.calls)
        lite = _contender("litellm", url, args.calls) if with_litellm else None
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if results is None:
        raise SystemExit("the finops contender failed")

    ingest = _ingest_rate(100_000)
    import_ms = _import_time_ms()

    print(f"ledger_rows_missing: {results.pop('rows_missing')[0]:.0f} rows (target: 0 rows)")
    for name in ("non_stream", "stream"):
        med, p99 = results[name]
        beside = ""
        if lite is not None:
            beside = f" (litellm: {lite[name][0]:.0f} us)"
        print(f"added_latency_median_{name}: {med:.0f} us (target: 100 us){beside}")
        beside = f" (litellm: {lite[name][1]:.0f} us)" if lite is not None else ""
        print(f"added_latency_p99_{name}: {p99:.0f} us (target: 500 us){beside}")
    if "raw_include_usage" in results:
        med, p99 = results["raw_include_usage"]
        print(f"raw_sdk_include_usage_cost_median: {med:.0f} us (no finops; part of stream)")
    for name in (
        "stream_same_wire",
        "gemini_non_stream",
        "gemini_stream",
        "bedrock_converse",
        "bedrock_converse_stream",
    ):
        if name in results:
            med, p99 = results[name]
            print(f"added_latency_median_{name}: {med:.0f} us (target: 100 us)")
            print(f"added_latency_p99_{name}: {p99:.0f} us (target: 500 us)")
    if lite is not None:
        for name in ("non_stream", "stream"):
            print(
                f"litellm_added_latency_median_{name}: {lite[name][0]:.0f} us "
                f"(finops: {results[name][0]:.0f} us)"
            )
    print(f"ledger_ingest: {ingest:,.0f} rows/s (target: 200000 rows/s)")
    print(f"import_finops: {import_ms:.0f} ms (target: 150 ms)")


if __name__ == "__main__":
    main()
