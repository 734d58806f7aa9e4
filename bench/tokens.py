"""Token counting and estimate speed, bound tightness, and error against real provider counts.

Run: ``python bench/tokens.py``. Single-threaded (one core). Ends with one line per figure.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from finops.tokens import count_tokens, estimate_request, get_encoding

CALIBRATION = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "calibration"
PARAGRAPH = (
    "FinOps for language models means knowing, before a request leaves the process, what it "
    "may cost: the prompt is tokenized offline, the worst-case output is bounded by max_tokens, "
    "and the budget reserves that amount atomically. Afterwards the provider's usage settles it. "
)
CHAT = {
    "model": "gpt-4o",
    "max_tokens": 256,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France? Answer briefly."},
        {"role": "assistant", "content": "Paris is the capital of France."},
        {"role": "user", "content": "And what about Germany? Give one sentence."},
        {"role": "assistant", "content": "Berlin is the capital of Germany."},
    ],
}


def _per_call(fn: Any, n: int) -> float:
    fn()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def _calibration() -> Any:
    sys.path.insert(0, str(CALIBRATION))
    import calib  # tests/fixtures/calibration/calib.py

    return calib


def _q(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[int(p * (len(ordered) - 1))]


def main() -> None:
    t = time.perf_counter()
    enc = get_encoding("o200k_base")
    get_encoding("cl100k_base")
    load_ms = (time.perf_counter() - t) * 1000
    text = PARAGRAPH * 400
    n_tokens = len(enc.encode_ordinary(text))
    per = _per_call(lambda: count_tokens(model="gpt-4o", text=text), 3)
    tokens_per_s = n_tokens / per

    def exact() -> Any:
        return estimate_request(provider="openai", endpoint="chat.completions", body=CHAT)

    def bound() -> Any:
        return estimate_request(
            provider="openai", endpoint="chat.completions", body=CHAT, mode="bound"
        )

    est_us = _per_call(exact, 5000) * 1e6
    # A new last user message on every call (its count cannot come from the memo).
    fresh = [
        {
            **CHAT,
            "messages": [*CHAT["messages"][:4], {"role": "user", "content": f"Case {i}: why?"}],
        }
        for i in range(25_000)
    ]
    it = iter(fresh)
    cold_us = (
        _per_call(
            lambda: estimate_request(provider="openai", endpoint="chat.completions", body=next(it)),
            4000,
        )
        * 1e6
    )
    bound_us = _per_call(bound, 5000) * 1e6
    priced_us = None
    try:
        from finops.pricing import PriceBook

        book = PriceBook.default()
        priced_us = (
            _per_call(
                lambda: estimate_request(
                    provider="openai", endpoint="chat.completions", body=CHAT, pricebook=book
                ),
                5000,
            )
            * 1e6
        )
    except ImportError:
        pass
    big = {**CHAT, "messages": [{"role": "user", "content": text}]}
    big_exact = _per_call(
        lambda: estimate_request(provider="openai", endpoint="chat.completions", body=big), 3
    )
    big_bound = _per_call(
        lambda: estimate_request(
            provider="openai", endpoint="chat.completions", body=big, mode="bound"
        ),
        3,
    )

    print(f"encodings loaded and verified in {load_ms:.0f} ms (first use only)")
    calib = _calibration()
    t = time.perf_counter()
    scored = calib.score(calib.load())
    score_s = time.perf_counter() - t
    print(f"{len(scored)} recorded calls estimated (exact + bound) in {score_s:.1f} s")
    by_family: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    by_bucket: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for sc in scored:
        by_family[(sc.row.provider, sc.family, sc.row.split)].append(sc)
        by_bucket[(calib.bucket(sc), sc.row.split)].append(sc)
    print()
    print(
        f"{'family':22} {'split':5} {'calls':>5} {'exact':>5} {'mean|err|':>9} {'worst':>8}  (text+tools)"
    )
    for (provider, fam, split), rows in sorted(by_family.items()):
        rows = [r for r in rows if r.row.shape in ("text", "tools")]
        if not rows:
            continue
        errs = [r.error for r in rows]
        exact = sum(1 for r in rows if r.estimate == r.row.billed_input)
        print(
            f"{provider[:1]}:{fam:20} {split:5} {len(rows):5} {exact:5} "
            f"{statistics.mean(abs(e) for e in errs):9.1%} {max(errs, key=abs):+8.1%}"
        )
    print()
    for (name, split), rows in sorted(by_bucket.items()):
        errs = [abs(r.error) for r in rows]
        print(f"bucket {name:18} {split:5} n={len(rows):4} mean |err| {statistics.mean(errs):.1%}")
    below = [sc for sc in scored if min(sc.upper, sc.bound) < sc.row.billed_input]
    upper = [sc.upper / sc.row.billed_input for sc in scored]
    cheap = [sc.bound / sc.row.billed_input for sc in scored]
    test = {name: rows for (name, split), rows in by_bucket.items() if split == "test"}

    def mean_err(name: str) -> float:
        return statistics.mean(abs(r.error) for r in test[name]) if name in test else float("nan")

    print()
    print(f"counting: {tokens_per_s / 1e6:.2f} M tokens/s (target: >= 1 M tokens/s)")
    print(f"estimate 5-message chat, exact: {cold_us:.1f} us (target: <= 50 us)")
    print(
        f"estimate 5-message chat, exact, repeated text (memoized): {est_us:.1f} us (target: none)"
    )
    if priced_us is not None:
        print(
            f"estimate 5-message chat, exact + worst-case price: {priced_us:.1f} us (target: none)"
        )
    print(f"estimate 5-message chat, bound: {bound_us:.1f} us (target: none)")
    print(f"estimate {n_tokens}-token prompt, exact: {big_exact * 1e3:.2f} ms (target: none)")
    print(f"estimate {n_tokens}-token prompt, bound: {big_bound * 1e3:.3f} ms (target: none)")
    print(f"openai text, test split: {mean_err('openai/text'):.2%} mean |err| (target: <= 2%)")
    print(
        f"openai tools/schema, test split: {mean_err('openai/tools'):.2%} mean |err| (target: <= 5%)"
    )
    print(
        f"anthropic text, test split: {mean_err('anthropic/text'):.2%} mean |err| (target: <= 10%)"
    )
    print(
        f"anthropic client tools, test split: {mean_err('anthropic/tools'):.2%} mean |err| "
        "(target: <= 10%)"
    )
    print(
        f"input_tokens_max >= billed: {len(scored) - len(below)}/{len(scored)} calls "
        f"(target: {len(scored)}/{len(scored)})"
    )
    print(
        f"input_tokens_max / billed: median {statistics.median(upper):.2f}x, "
        f"p95 {_q(upper, 0.95):.2f}x (target: none)"
    )
    print(
        f"mode=bound / billed: median {statistics.median(cheap):.2f}x, "
        f"p95 {_q(cheap, 0.95):.2f}x, min {min(cheap):.2f}x (target: min >= 1)"
    )


if __name__ == "__main__":
    main()
