"""Added latency of finops per call, against the raw SDK, in one run.

    python bench/overhead.py [--calls 2000]

The local provider server runs in a separate process (so it does not compete with the
measured process for the GIL). Raw and wrapped calls are interleaved (ABAB...) so machine
noise hits both alike; the added latency is the difference of the two distributions at the
same percentile. Also measured: the ledger's ingest rate and the cold ``import finops`` time.
Last lines: ``name: value unit (target: X)``.
"""

from __future__ import annotations

import argparse
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
        import boto3
    except ImportError:
        return out

    def bedrock() -> object:
        return boto3.client(
            "bedrock-runtime",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )

    b_raw, b_fo = bedrock(), fo.wrap(bedrock())  # type: ignore[attr-defined]
    msgs = [{"role": "user", "content": [{"text": "Say hello to the benchmark."}]}]

    def converse(c: object) -> Callable[[], object]:
        return lambda: c.converse(  # type: ignore[attr-defined]
            modelId="us.amazon.nova-lite-v1:0", messages=msgs, inferenceConfig={"maxTokens": 16}
        )

    out["bedrock_converse"] = (converse(b_raw), converse(b_fo))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()

    import openai

    import finops

    proc, url = _start_server()
    tmp = Path(tempfile.mkdtemp(prefix="finops-bench-"))
    try:
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

        def stream(client: openai.OpenAI) -> Callable[[], object]:
            return lambda: list(
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    max_tokens=16,
                    stream=True,  # type: ignore[arg-type]
                )
            )

        results: dict[str, tuple[float, float]] = {}
        for name, make in (("non_stream", call), ("stream", stream)):
            a, b = _paired(make(raw), make(wrapped), args.calls)
            med = statistics.median(b) - statistics.median(a)
            p99 = _pct(b, 0.99) - _pct(a, 0.99)
            results[name] = (med, p99)
            print(
                f"{name}: raw median {statistics.median(a):.0f} us, wrapped median "
                f"{statistics.median(b):.0f} us, raw p99 {_pct(a, 0.99):.0f} us, "
                f"wrapped p99 {_pct(b, 0.99):.0f} us"
            )
        extra = 0
        for name, (raw_fn, wrapped_fn) in _other_providers(url, fo).items():
            a, b = _paired(raw_fn, wrapped_fn, args.calls)
            results[name] = (
                statistics.median(b) - statistics.median(a),
                _pct(b, 0.99) - _pct(a, 0.99),
            )
            extra += args.calls + 50
            print(
                f"{name}: raw median {statistics.median(a):.0f} us, wrapped median "
                f"{statistics.median(b):.0f} us"
            )
        fo.flush()
        rows = fo.ledger.query("SELECT count(*) FROM calls")[0][0]
        expected = 2 * (args.calls + 50) + extra
        print(f"ledger rows written: {rows} (expected {expected})")
        fo.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    ingest = _ingest_rate(100_000)
    import_ms = _import_time_ms()

    print(f"added_latency_median_non_stream: {results['non_stream'][0]:.0f} us (target: 100 us)")
    print(f"added_latency_p99_non_stream: {results['non_stream'][1]:.0f} us (target: 500 us)")
    print(f"added_latency_median_stream: {results['stream'][0]:.0f} us (target: 100 us)")
    print(f"added_latency_p99_stream: {results['stream'][1]:.0f} us (target: 500 us)")
    for name in ("gemini_non_stream", "gemini_stream", "bedrock_converse"):
        if name in results:
            med, p99 = results[name]
            print(f"added_latency_median_{name}: {med:.0f} us (target: 100 us)")
            print(f"added_latency_p99_{name}: {p99:.0f} us (target: 500 us)")
    print(f"ledger_ingest: {ingest:,.0f} rows/s (target: 200000 rows/s)")
    print(f"import_finops: {import_ms:.0f} ms (target: 150 ms)")


if __name__ == "__main__":
    main()
