"""Pricing benchmark: cost of one price() call on a resolved model, and of loading tables.

    python bench/pricing.py

load_tables: a fresh PriceBook.load() (manifest, units, finops' overrides) plus the first
price() on one model of each of OpenAI, Anthropic, Google, Mistral and DeepSeek, which reads
and validates those five provider tables (the others load lazily, if ever needed).
validate_all: every one of the 47 tables (what `finops prices check` style tooling pays).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from finops.pricing import PriceBook
from finops.usage import Usage

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FIRST_CALLS = [
    ("openai", "gpt-4o-2024-08-06"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("google", "gemini-2.5-pro"),
    ("mistral", "mistral-large-latest"),
    ("deepseek", "deepseek-chat"),
]


def load_tables_ms(repeats: int = 15) -> float:
    usage = Usage(input_tokens=100, output_tokens=10)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        book = PriceBook.load()
        for provider, model in FIRST_CALLS:
            book.price(provider=provider, model=model, usage=usage, at=AT)
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def validate_all_ms(repeats: int = 5) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        PriceBook.load().validate_all()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def price_call_us(n: int = 20_000) -> float:
    book = PriceBook.load()
    usage = Usage(
        input_tokens=1200, cache_read_tokens=2048, output_tokens=300, reasoning_tokens=500
    )
    cases = [
        ("openai", "gpt-4o-2024-08-06", None),
        ("anthropic", "claude-sonnet-4-5-20250929", None),
        ("openai", "gpt-5", "priority"),
        ("deepseek", "deepseek-chat", None),
    ]
    results = []
    for provider, model, tier in cases:
        book.price(provider=provider, model=model, usage=usage, at=AT, service_tier=tier)
        rounds = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n // 5):
                book.price(provider=provider, model=model, usage=usage, at=AT, service_tier=tier)
            rounds.append((time.perf_counter() - start) / (n // 5) * 1e6)
        results.append(min(rounds))
        print(f"  price {provider}/{model} tier={tier}: {min(rounds):.1f} us")
    return max(results)


def main() -> None:
    print(f"validate_all: {validate_all_ms():.1f} ms (every table, not on the call path)")
    print(f"price_call: {price_call_us():.1f} us (target: 20 us)")
    print(f"load_tables: {load_tables_ms():.1f} ms (target: 30 ms)")


if __name__ == "__main__":
    main()
