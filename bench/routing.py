"""Router decision latency and memory.

    python bench/routing.py [--prompts 2000]

Times ``Router.decide`` (score + threshold + servability check + parameter translation) on
real prompts from shared/data/routing (MMLU and GSM8K, or built-in samples when the data is
absent), pinned to one CPU core where the OS allows it. Reports p50/p99 of one decision,
the same for the score alone, the p99 of the decision's own CPU time (wall-clock p99 on a
loaded machine is mostly time spent preempted), and the router's memory (weights as loaded, plus the Python
heap growth measured by tracemalloc while loading the model). The raw SDK is not involved:
the decision runs before the SDK is called, so its time adds 1:1 to every routed call.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent.parent.parent / "shared" / "data" / "routing"
SAMPLES = [
    "What is 17 * 23? Show your work.",
    "Summarise this paragraph in one sentence: the quick brown fox jumps over the lazy dog.",
    "Let p = (1, 2, 5, 4)(2, 3) in S_5 . Find the index of <p> in S_5.\nA. 8\nB. 2\nC. 24\nD. 120",
]


def prompts(n: int) -> list[str]:
    found: list[str] = []
    for name in ("mmlu.jsonl.gz", "gsm8k.jsonl.gz"):
        path = Path(os.environ.get("FINOPS_ROUTING_DATA", DATA)) / name
        if path.exists():
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                found += [json.loads(line)["prompt"] for line in fh]
    if not found:
        found = SAMPLES
    rng = np.random.default_rng(0)
    return [found[i] for i in rng.integers(0, len(found), n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=2000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    import finops
    from finops.pricing import PriceBook
    from finops.routing.model import load_model
    from finops.routing.policy import Router
    from finops.routing.step import _BookLimits

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    model = load_model(Path(finops.__file__).parent / "routing" / "data")
    heap = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    weights = model.w_sparse.nbytes + model.w_dense.nbytes + model.curve_threshold.nbytes * 3
    book = PriceBook.default()
    config = finops.Routing(
        routes=[finops.Route(source="o3", targets=[finops.RouteTarget(model="gpt-4.1-mini")])]
    )
    router = Router(config=config, model=model, limits=_BookLimits(lambda: book))
    texts = prompts(args.prompts)
    requests = [{"model": "o3", "messages": [{"role": "user", "content": t}]} for t in texts]
    for kw in requests[:50]:  # warm up caches (capabilities, price lookups)
        router.decide(endpoint="chat.completions", kwargs=kw)

    decide_us, score_us, cpu_us = [], [], []
    for kw, text in zip(requests, texts, strict=True):
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        router.decide(endpoint="chat.completions", kwargs=kw)
        t1 = time.perf_counter_ns()
        cpu_us.append((time.thread_time_ns() - c0) / 1000)
        model.score(text)
        t2 = time.perf_counter_ns()
        decide_us.append((t1 - t0) / 1000)
        score_us.append((t2 - t1) / 1000)
    d, s = np.array(decide_us), np.array(score_us)
    chars = np.array([len(t) for t in texts])
    print(f"# {len(texts)} prompts, median {int(np.median(chars))} chars, max {chars.max()}")
    print(f"routing decision p50: {np.percentile(d, 50) / 1000:.3f} ms (target: 1 ms)")
    print(f"routing decision p99: {np.percentile(d, 99) / 1000:.3f} ms (target: none)")
    c = np.array(cpu_us)
    print(f"routing decision CPU p99: {np.percentile(c, 99) / 1000:.3f} ms (target: none)")
    print(f"router score p50: {np.percentile(s, 50) / 1000:.3f} ms (target: 1 ms)")
    print(f"router weights memory: {weights / 2**20:.2f} MiB (target: none)")
    print(f"router load heap: {heap / 2**20:.2f} MiB (target: none)")


if __name__ == "__main__":
    main()
