"""Token counting and estimate speed, bound tightness, and error against real provider counts.

Run: ``python bench/tokens.py``. Single-threaded (one core). Ends with one line per figure.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from finops.tokens import count_tokens, estimate_request, get_encoding

DATA = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
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


def _recorded() -> list[tuple[str, str, str, dict[str, Any], int, int]]:
    rows = []
    for line in (DATA / "openai_recorded.jsonl").read_text().splitlines():
        r = json.loads(line)
        u = r["usage"]
        actual = u.get("input_tokens", u.get("prompt_tokens"))
        ep = r["endpoint"].strip("/").replace("/", ".")
        rows.append(("openai", ep, r["request_model"], r["request"], actual, actual))
    for line in (DATA / "anthropic_recorded.jsonl").read_text().splitlines():
        r = json.loads(line)
        final = r["usage"]["message_delta"]["input_tokens"]
        start = r["usage"]["message_start"]["input_tokens"]
        rows.append(("anthropic", "messages", r["request_model"], r["request"], final, start))
    return rows


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
    print(
        f"{'provider':9} {'endpoint':16} {'model':28} {'actual':>7} {'est':>6} {'err':>7} "
        f"{'stated':>6} {'bound':>6}"
    )
    by_family: dict[str, list[float]] = defaultdict(list)
    ratios = []
    for provider, ep, model, body, final, start in _recorded():
        est = estimate_request(provider=provider, endpoint=ep, body=body)
        bnd = estimate_request(provider=provider, endpoint=ep, body=body, mode="bound")
        # Web search adds fetched pages server-side: compare with the pre-search count.
        actual = start if final != start else final
        err = (est.input_tokens - actual) / actual
        tag = "" if final == start else f" (final {final} incl. search results)"
        if "image size unknown" in est.notes:
            tag += " (image size unknown: worst case)"
        else:
            by_family[f"{provider}:{est.family}"].append(err)
        ratios.append(bnd.input_tokens / actual)
        print(
            f"{provider:9} {ep:16} {model[:28]:28} {actual:7} {est.input_tokens:6} "
            f"{err:+7.1%} {est.error_bound:6.0%} {bnd.input_tokens:6}{tag}"
        )
    print()
    for fam, errs in sorted(by_family.items()):
        mae = statistics.mean(abs(e) for e in errs)
        worst = max(errs, key=abs)
        print(f"error {fam}: n={len(errs)} mean |err| {mae:.1%}, worst {worst:+.1%}")
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
    print(
        f"bound / actual on recorded calls: median {statistics.median(ratios):.2f}x, "
        f"max {max(ratios):.2f}x, min {min(ratios):.2f}x (target: min >= 1)"
    )


if __name__ == "__main__":
    main()
