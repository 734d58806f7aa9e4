"""Train the semantic guard's interaction head (finops.cache.interaction) on labelled pairs.

    python scripts/train_interaction.py --pairs ../shared/data/cache/qqp_pairs.jsonl.gz \
        --states /tmp/states.npz --out finops/cache/data/guard_head.npz \
        --guard-out finops/cache/data/guard.json

Needs PyTorch at training time only (``pip install torch``, CPU is enough: ~2 min an epoch
on one core); finops itself evaluates the exported head in numpy.

1. Every text is embedded once, alone, by the int8 MiniLM embedder, keeping what a stored
   entry keeps (``Tokens``: unit rows, int8), and the 27 guard features of each pair are
   computed (12 lexical, 15 token-alignment). ``--states`` caches both (they take ~3 ms a
   text on one thread; a second run reads them back).
2. Pairs are shuffled with ``--seed-split`` (0, as ``finops cache calibrate``) and split
   the same way: 30% held out, then 30% of the rest to tune, the rest to fit.
3. The head is fitted on the fit split (binary cross-entropy, AdamW, one-cycle schedule,
   the two texts swapped at random so the score does not depend on the order); the epoch
   kept is the one with the best tune recall at 1% of non-duplicates served. The threshold
   is then chosen on the tune split for ``--target`` (definition ``--definition``) and the
   held-out figures, never used for a choice, go into the provenance.
4. Written: the head (float16 ``.npz``, provenance inside) and, with ``--guard-out``, a
   guard file (format 4) that names it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finops.cache.calibrate import _fit_trees, _threshold, evaluate, load_pairs  # noqa: E402
from finops.cache.interaction import Interaction  # noqa: E402
from finops.cache.semantic import (  # noqa: E402
    LEXICAL_FEATURES,
    VETOES,
    Guard,
    MiniLMEmbedder,
    Tokens,
    lexical_features,
    token_features,
)


def states(pairs: list[tuple[str, str, bool]], cache: Path | None) -> dict[str, Any]:
    """Token states (unit rows as float16, content flags, offsets), pooled vectors and the
    27 features of every pair; read from / written to ``cache``."""
    if cache is not None and cache.exists():
        data = dict(np.load(cache))
        texts = json.loads(Path(str(cache) + ".texts.json").read_text())
    else:
        embedder = MiniLMEmbedder(threads=1)
        texts = sorted({t for a, b, _ in pairs for t in (a, b)})
        toks: list[Tokens] = []
        pooled = np.zeros((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            vec, (tok,) = embedder.embed_tokens([text])
            pooled[i] = vec[0]
            toks.append(tok)
            if i % 10_000 == 0:
                print(f"embedded {i}/{len(texts)}", flush=True)
        lens = np.array([len(t.scale) for t in toks])
        data = {
            "units": np.concatenate([t.unit() for t in toks]).astype(np.float16),
            "content": np.concatenate([t.content for t in toks]),
            "offs": np.r_[0, np.cumsum(lens)],
            "trunc": np.array([t.truncated for t in toks]),
            "pooled": pooled,
        }
        data["texts"] = texts
    index = {t: i for i, t in enumerate(texts)}
    data["ia"] = np.array([index[a] for a, _, _ in pairs])
    data["ib"] = np.array([index[b] for _, b, _ in pairs])
    data["y"] = np.array([d for _, _, d in pairs])
    if "feats" not in data or len(data["feats"]) != len(pairs):
        units, content, offs = data["units"], data["content"], data["offs"]

        def tok(i: int) -> Tokens:
            h = units[offs[i] : offs[i + 1]].astype(np.float32)
            top = np.maximum(np.abs(h).max(axis=1), 1e-12)
            q = np.round(h / top[:, None] * 127).astype(np.int8)
            return Tokens(q, (top / 127).astype(np.float16), content[offs[i] : offs[i + 1]])

        rows = []
        for (a, b, _), i, j in zip(pairs, data["ia"], data["ib"], strict=True):
            cosine = float(data["pooled"][i] @ data["pooled"][j])
            rows.append(lexical_features(a, b, cosine) + token_features(tok(i), tok(j)))
        data["feats"] = np.array(rows, dtype=np.float32)
    if cache is not None and not cache.exists():
        np.savez(cache, **{k: v for k, v in data.items() if k != "texts"})
        Path(str(cache) + ".texts.json").write_text(json.dumps(texts))
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--states", type=Path, help="cache of token states and features")
    parser.add_argument("--out", type=Path, required=True, help="the head's .npz")
    parser.add_argument("--guard-out", type=Path, help="a guard file (format 4) naming it")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--max-pieces", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-split", type=int, default=0)
    parser.add_argument("--target", type=float, default=0.01)
    parser.add_argument("--definition", choices=["served", "negatives"], default="negatives")
    parser.add_argument("--cosine-floor", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--trees",
        type=Path,
        default=ROOT / "finops/cache/data/guard.json",
        help="a guard file whose trees are mixed with the head (--mix) or stacked (--stack)",
    )
    parser.add_argument(
        "--stack",
        action="store_true",
        help="the trees' log-odds are a 28th input of the head's MLP (out-of-fold on the fit split)",
    )
    parser.add_argument("--folds", type=int, default=5, help="folds for --stack's fit-split scores")
    parser.add_argument(
        "--stop-on",
        choices=["tune", "unseen", "mix"],
        default="tune",
        help="the epoch kept: best recall at 1%% of non-duplicates served on the tune split "
        "(tune), on its pairs with no text in a fit pair (unseen), or the best mix with the "
        "trees on those pairs (mix)",
    )
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument(
        "--mix",
        action="store_true",
        help="the guard written mixes the head's log-odds with the trees' (weight and threshold "
        "chosen on the tune pairs with no text in a fit pair)",
    )
    parser.add_argument("--scores-out", type=Path, help="tune log-odds (npz), for inspection")
    parser.add_argument(
        "--no-held-out",
        action="store_true",
        help="do not score the held-out split (selection runs)",
    )
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)  # >1 stalls on a busy machine (threads wait on each other)
    rng = np.random.default_rng(args.seed)
    pairs = load_pairs(args.pairs, seed=args.seed_split)
    data = states(pairs, args.states)
    units, content, offs, feats = data["units"], data["content"], data["offs"], data["feats"]
    ia, ib, y = data["ia"], data["ib"], data["y"].astype(bool)
    n = len(pairs)
    n_test = int(n * 0.3)
    n_tune = int((n - n_test) * 0.3)
    test, tune, fit = (
        np.arange(n_test),
        np.arange(n_test, n_test + n_tune),
        np.arange(n_test + n_tune, n),
    )
    cos = feats[:, 0]
    texts_fit = set(ia[fit].tolist()) | set(ib[fit].tolist())
    unseen = np.array(
        [i not in texts_fit and j not in texts_fit for i, j in zip(ia, ib, strict=True)]
    )
    unseen_tune = tune[unseen[tune]]
    # the trees' log-odds: on tune and held-out pairs from the trees as fitted on the fit
    # split; on fit pairs, with --stack, from trees fitted on the other folds (else they leak)
    trees_guard = Guard.from_json(json.loads(args.trees.read_text()), beside=args.trees)
    assert trees_guard.trees is not None, f"{args.trees} has no trees"
    z_trees = trees_guard.trees.decision(feats[:, :27]) + trees_guard.bias
    if args.stack:
        keep = fit[cos[fit] >= args.cosine_floor]  # the rows the trees were fitted on
        fold = np.random.default_rng(args.seed).integers(0, args.folds, len(keep))
        for k in range(args.folds):
            trees_k, bias_k = _fit_trees(feats[keep[fold != k], :27], y[keep[fold != k]])
            z_trees[keep[fold == k]] = trees_k.decision(feats[keep[fold == k], :27]) + bias_k
            print(f"out-of-fold trees {k + 1}/{args.folds}", flush=True)
        feats = np.concatenate([feats[:, :27], z_trees[:, None]], axis=1).astype(np.float32)
    mu, sd = feats[fit].mean(0), feats[fit].std(0) + 1e-6
    fz = ((feats - mu) / sd).astype(np.float32)
    lens = np.diff(offs)
    d = args.width

    def batch_tokens(idx: np.ndarray) -> tuple[Any, Any, Any]:
        width = min(int(lens[idx].max()), args.max_pieces)
        mask = np.arange(width)[None, :] < np.minimum(lens[idx], width)[:, None]
        pos = np.where(mask, offs[idx][:, None] + np.arange(width)[None, :], 0)
        x = units[pos].astype(np.float32) * mask[..., None]
        c = (content[pos] & mask).astype(np.float32)
        return torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(c)

    class Head(nn.Module):
        """The torch twin of finops.cache.interaction.Interaction."""

        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(384, d)
            self.ffn = nn.Sequential(nn.Linear(4 * d + 2, d), nn.ReLU())
            self.out = nn.Sequential(
                nn.Linear(4 * d + feats.shape[1], args.hidden),
                nn.ReLU(),
                nn.Dropout(args.dropout),
                nn.Linear(args.hidden, 1),
            )
            self.drop = nn.Dropout(args.dropout)

        def side(self, a: Any, b: Any, ma: Any, mb: Any, ca: Any, sim: Any) -> Any:
            e = (a @ b.transpose(1, 2) / d**0.5).masked_fill(~mb[:, None, :], -1e4)
            at = torch.softmax(e, -1) @ b
            best = sim.masked_fill(~mb[:, None, :], -2).max(-1).values
            h = self.ffn(
                self.drop(torch.cat([a, at, a - at, a * at, best[..., None], ca[..., None]], -1))
            )
            mf = ma[..., None].float()
            top = h.masked_fill(~ma[..., None], -1e4).max(1).values
            return torch.cat([top, (h * mf).sum(1) / mf.sum(1).clamp(min=1)], -1)

        def forward(self, A: Any, ma: Any, ca: Any, B: Any, mb: Any, cb: Any, f: Any) -> Any:
            sim = A @ B.transpose(1, 2)
            a, b = self.proj(A), self.proj(B)
            ha = self.side(a, b, ma, mb, ca, sim)
            hb = self.side(b, a, mb, ma, cb, sim.transpose(1, 2))
            return self.out(torch.cat([ha + hb, (ha - hb).abs(), f], -1))[:, 0]

    model = Head()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * (len(fit) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=steps, pct_start=0.1
    )
    eps = args.label_smoothing
    target = torch.from_numpy((y * (1 - eps) + eps / 2).astype(np.float32))

    def run(idx: np.ndarray, train: bool) -> Any:
        A, ma, ca = batch_tokens(ia[idx])
        B, mb, cb = batch_tokens(ib[idx])
        if train and rng.random() < 0.5:
            A, ma, ca, B, mb, cb = B, mb, cb, A, ma, ca
        return model(A, ma, ca, B, mb, cb, torch.from_numpy(fz[idx]))

    def predict(idx: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            out = np.concatenate(
                [run(idx[i : i + 512], False).numpy() for i in range(0, len(idx), 512)]
            )
        model.train()
        return out

    lex = list(LEXICAL_FEATURES)
    same = (
        (feats[:, lex.index("jaccard")] >= 1)
        & (feats[:, lex.index("word_order")] >= 1)
        & (feats[:, lex.index("length_ratio")] >= 1)
    )
    veto = (feats[:, [lex.index(v) for v in VETOES]] > 0.5).any(1)

    def final(idx: np.ndarray, z: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-np.clip(z, -40, 40)))
        p = np.where(veto[idx], 0.0, np.where(same[idx], 1.0, p))
        return np.where(cos[idx] >= args.cosine_floor, p, 0.0).astype(np.float32)

    def recall_at(scores: np.ndarray, labels: np.ndarray, rate: float) -> float:
        neg = np.sort(scores[~labels])[::-1]
        cut = neg[int(rate * len(neg))]
        return float((scores[labels] > cut).sum() / labels.sum())

    grid = [round(0.1 * k, 1) for k in range(11)]

    def best_mix(z_head: np.ndarray) -> tuple[float, float]:
        """(recall, weight) of the best mix with the trees on the unseen tune pairs;
        ``z_head`` is over the whole tune split."""
        where = np.searchsorted(tune, unseen_tune)
        zt, zh = z_trees[unseen_tune], z_head[where]
        recalls = [
            recall_at(final(unseen_tune, (1 - w) * zt + w * zh), y[unseen_tune], 0.01) for w in grid
        ]
        k = int(np.argmax(recalls))
        return recalls[k], grid[k]

    best, best_state, best_epoch, t0 = -1.0, None, -1, time.time()
    for epoch in range(args.epochs):
        perm = rng.permutation(fit)
        # batches of similar lengths (less padding): sort within windows of 50 batches
        window = 50 * args.batch
        longest = np.maximum(lens[ia[perm]], lens[ib[perm]])
        for w in range(0, len(perm), window):
            perm[w : w + window] = perm[w : w + window][
                np.argsort(longest[w : w + window], kind="stable")
            ]
        batches = [
            perm[i : i + args.batch] for i in range(0, len(perm) - args.batch + 1, args.batch)
        ]
        total = 0.0
        for b_ in rng.permutation(len(batches)):
            idx = batches[b_]
            loss = F.binary_cross_entropy_with_logits(run(idx, True), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        z_tune = predict(tune)
        r_tune = recall_at(final(tune, z_tune), y[tune], 0.01)
        where = np.searchsorted(tune, unseen_tune)
        r_unseen = recall_at(final(unseen_tune, z_tune[where]), y[unseen_tune], 0.01)
        r_mix, w_mix = best_mix(z_tune)
        r = {"tune": r_tune, "unseen": r_unseen, "mix": r_mix}[args.stop_on]
        print(
            f"epoch {epoch}: loss {total / len(perm):.4f}, tune recall at 1% {r_tune:.4f}, "
            f"unseen tune {r_unseen:.4f}, best mix on unseen tune {r_mix:.4f} (weight {w_mix}), "
            f"{time.time() - t0:.0f} s",
            flush=True,
        )
        if r > best:
            best, best_epoch = r, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    st = {k: v.numpy() for k, v in best_state.items()}
    head = Interaction(
        proj_w=st["proj.weight"].T.copy(),
        proj_b=st["proj.bias"],
        ffn_w=st["ffn.0.weight"].T.copy(),
        ffn_b=st["ffn.0.bias"],
        out1_w=st["out.0.weight"].T.copy(),
        out1_b=st["out.0.bias"],
        out2_w=st["out.3.weight"][0].copy(),
        out2_b=float(st["out.3.bias"][0]),
        mean=mu.astype(np.float32),
        scale=sd.astype(np.float32),
    )
    # the figures come from the float16 head as shipped, evaluated by finops' numpy code
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out)
    head = Interaction.load(args.out)

    def shipped(idx: np.ndarray) -> np.ndarray:
        """The float16 head's log-odds through finops' numpy code (0 below the floor)."""
        z = np.zeros(len(idx), dtype=np.float32)
        for n_, k in enumerate(idx):
            if cos[k] < args.cosine_floor:
                continue
            qa = (
                units[offs[ia[k]] : offs[ia[k] + 1]].astype(np.float32),
                content[offs[ia[k]] : offs[ia[k] + 1]],
            )
            qb = (
                units[offs[ib[k]] : offs[ib[k] + 1]].astype(np.float32),
                content[offs[ib[k]] : offs[ib[k] + 1]],
            )
            z[n_] = head.logits(qa[0], qa[1], [qb], feats[k][None])[0]
        return z

    z_tune = shipped(tune)
    threshold = _threshold(final(tune, z_tune), y[tune], args.target, args.definition)
    z_test = None if args.no_held_out else shipped(test)
    held: dict[str, Any] = {}
    if z_test is not None:
        held = evaluate(final(test, z_test) >= threshold, y[test]).as_dict()
        print("held-out", json.dumps(held), flush=True)
    mix: dict[str, Any] = {}
    if args.mix:
        r_mix, w_mix = best_mix(z_tune)
        where = np.searchsorted(tune, unseen_tune)
        s_mix = final(unseen_tune, (1 - w_mix) * z_trees[unseen_tune] + w_mix * z_tune[where])
        mix = {
            "weight": w_mix,
            "threshold": _threshold(s_mix, y[unseen_tune], args.target, args.definition),
            "grid": grid,
            "chosen_on": f"the {len(unseen_tune)} tune pairs whose texts occur in no fit pair: "
            "the weight with the best recall at the threshold for 1% of their non-duplicates "
            "served",
            "tune_recall_at_1pct": round(r_mix, 4),
        }
        if z_test is not None:
            s_test = final(test, (1 - w_mix) * z_trees[test] + w_mix * z_test)
            mix["held_out"] = {}
            for name, sub in (("whole", np.ones(len(test), bool)), ("unseen_texts", unseen[test])):
                sc, lab = s_test[sub], y[test][sub]
                mix["held_out"][name] = {
                    "pairs": int(sub.sum()),
                    **evaluate(sc >= mix["threshold"], lab).as_dict(),
                    "recall_at_0.5_1_2pct_negatives_served": [
                        round(recall_at(sc, lab, r), 4) for r in (0.005, 0.01, 0.02)
                    ],
                }
            print("mix held-out", json.dumps(mix["held_out"]), flush=True)
    if args.scores_out is not None:
        np.savez(args.scores_out, tune=tune, z_tune=z_tune, z_trees=z_trees, unseen=unseen)
    digest = hashlib.sha256(Path(args.pairs).read_bytes()).hexdigest()
    inputs = "the 27 guard features" + (
        " and the trees' log-odds (out-of-fold on the fit split)" if args.stack else ""
    )
    provenance = {
        "source": f"{Path(args.pairs).name} sha256 {digest}; shuffled with seed {args.seed_split}; "
        "the pairs are not shipped, only these fitted numbers",
        "pairs": {"fit": len(fit), "tune": len(tune), "held_out": len(test)},
        "model": f"ESIM-style interaction head over frozen int8 MiniLM token states, width {d}, "
        f"hidden {args.hidden}, plus {inputs}; {sum(p.numel() for p in model.parameters())} "
        "parameters, float16",
        "training": {k: v for k, v in vars(args).items() if not isinstance(v, Path)}
        | {
            "epoch_kept": best_epoch,
            "stop_recall_at_1pct": round(best, 4),
            "torch": torch.__version__,
        },
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "target_false_hit": args.target,
        "definition": args.definition,
        "threshold": threshold,
        "held_out": held,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if mix:
        provenance["mix"] = mix
    head = Interaction(
        **{k: getattr(head, k) for k in head.__dataclass_fields__ if k != "provenance"},
        provenance=provenance,
    )
    head.save(args.out)
    if args.guard_out is not None:
        empty = np.zeros(0, dtype=np.float32)
        with_trees = args.mix or args.stack
        guard = Guard(
            empty,
            trees_guard.bias if with_trees else 0.0,  # the trees' (a head's own is 0)
            empty,
            empty,
            mix["threshold"] if mix else threshold,
            args.cosine_floor,
            MiniLMEmbedder().name,
            {
                "source": trees_guard.provenance.get("source", ""),
                "pairs": provenance["pairs"],
                "model": "trees and the interaction head in "
                + args.out.name
                + (", the head reading the trees' log-odds" if args.stack else "")
                + (", their log-odds averaged with weight mix on the head's" if args.mix else ""),
                "trees": trees_guard.provenance.get("trees", trees_guard.provenance),
                "head": provenance,
                "target_false_hit": args.target,
                "definition": args.definition,
                "held_out": mix.get("held_out", {}).get("whole", held) if mix else held,
            }
            if with_trees
            else provenance,
            uses_tokens=True,
            trees=trees_guard.trees if with_trees else None,
            head=head,
            head_file=args.out.name,
            mix=mix["weight"] if mix else 1.0,
            stack=args.stack,
        )
        args.guard_out.write_text(json.dumps(guard.to_json(), separators=(",", ":")))
    print(f"wrote {args.out}" + (f" and {args.guard_out}" if args.guard_out else ""))


if __name__ == "__main__":
    main()
