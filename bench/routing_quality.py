"""Router quality on held-out prompts: k-fold and group (unseen MMLU subject) splits.

    python bench/routing_quality.py [--folds 5] [--seed 0] [--json OUT]

Uses exactly the shipped training recipe (finops.routing.model.train's features, ridge and
hyper-parameters; calibration skipped). Three evaluations, each over ``--folds`` folds:

- MMLU seen subjects: random k-fold over MMLU prompts (train: other folds + all of GSM8K);
- MMLU unseen subjects: k-fold over whole subjects (no test subject in training);
- GSM8K: random k-fold over GSM8K (train: other folds + all of MMLU).

Prints the mean (and per-fold) saving at 95 % of strong quality, APGR and CPT(50/80 %) of the
router, random routing and the oracle; ends with one line per headline figure.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from finops.routing.features import featurize
from finops.routing.metrics import evaluate, oracle_scores, random_metrics
from finops.routing.model import RouterModel, _fit, _score_feats, load_labelled

DATA = Path(__file__).resolve().parent.parent.parent.parent / "shared" / "data" / "routing"
TARGETS = {"mmlu_seen": 0.65, "mmlu_unseen": 0.65, "gsm8k": 0.45}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--alpha", type=float, default=30.0, help="ridge penalty (shipped: 30)")
    parser.add_argument("--only", default="", help="comma list of splits to run")
    args = parser.parse_args()
    started = time.perf_counter()
    mmlu = load_labelled([args.data / "mmlu.jsonl.gz"])
    gsm = load_labelled([args.data / "gsm8k.jsonl.gz"])
    rows = mmlu + gsm
    bits, alpha, iters = 18, args.alpha, 40
    feats = [featurize(r.prompt, bits) for r in rows]
    s = np.array([r.strong_correct for r in rows], dtype=np.float64)
    w = np.array([r.weak_correct for r in rows], dtype=np.float64)
    y = s - w
    n_m = len(mmlu)
    m_idx, g_idx = np.arange(n_m), np.arange(n_m, len(rows))
    rng = np.random.default_rng(args.seed)
    subjects = np.array([r.subject or "" for r in mmlu])
    uniq = rng.permutation(np.unique(subjects))
    splits: dict[str, list[np.ndarray]] = {
        "mmlu_seen": np.array_split(rng.permutation(m_idx), args.folds),
        "mmlu_unseen": [
            m_idx[np.isin(subjects, group)] for group in np.array_split(uniq, args.folds)
        ],
        "gsm8k": np.array_split(rng.permutation(g_idx), args.folds),
    }
    report: dict[str, Any] = {}
    if args.only:
        splits = {k: v for k, v in splits.items() if k in args.only.split(",")}
    for name, folds in splits.items():
        per: dict[str, list[dict[str, Any]]] = {"router": [], "random": [], "oracle": []}
        for test in folds:
            train_idx = np.setdiff1d(np.arange(len(rows)), test)
            ws, wd, b, mean, std = _fit([feats[i] for i in train_idx], y[train_idx], bits,
                                        alpha, iters)
            model = RouterModel(bits, ws.astype(np.float16).astype(np.float32), wd, b, mean,
                                std, *(np.zeros(1),) * 3)
            scores = np.array([_score_feats(model, feats[i]) for i in test])
            per["router"].append(evaluate(scores, s[test], w[test]).as_dict())
            per["random"].append(random_metrics(s[test], w[test]).as_dict())
            per["oracle"].append(evaluate(oracle_scores(s[test], w[test]), s[test],
                                          w[test]).as_dict())
            print(f"# {name} fold n={test.size}: saving95 {per['router'][-1]['saving95']:.3f}"
                  f" (oracle {per['oracle'][-1]['saving95']:.3f}) "
                  f"{time.perf_counter() - started:.0f}s", flush=True)
        summary = {}
        for who, ms in per.items():
            summary[who] = {
                k: float(np.mean([m[k] for m in ms])) for k in ("apgr", "cpt50", "cpt80",
                                                                 "saving95")
            }
            summary[who]["saving95_folds"] = [round(m["saving95"], 3) for m in ms]
        report[name] = summary
        r = summary["router"]
        print(f"# {name}: router saving95 {r['saving95']:.3f} {r['saving95_folds']} APGR "
              f"{r['apgr']:.3f} CPT50 {r['cpt50']:.3f} CPT80 {r['cpt80']:.3f} | random "
              f"{summary['random']['saving95']:.3f} | oracle {summary['oracle']['saving95']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    for name, target in TARGETS.items():
        if name not in report:
            continue
        print(f"routing saving at 95% {name}: {report[name]['router']['saving95'] * 100:.1f} % "
              f"(target: {target * 100:.0f} %)")


if __name__ == "__main__":
    main()
