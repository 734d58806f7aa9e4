"""Router recipes under nested validation: choices on inner validation chunks, outer test untouched.

    python bench/routing_nested.py [--recipes ship,cues,knn,...] [--ensemble "ship+cues*0.35"]
                                   [--cache /tmp/routing_nested] [--only mmlu_seen,...]

Outer folds are exactly bench/routing_quality.py's (5 folds, seed 0: MMLU by prompt, MMLU by
whole subject, GSM8K by prompt; the other benchmark always entirely in training). Inside each
outer training fold an inner validation chunk is carved out: a seeded random quarter of the
outer-train prompts of that benchmark, or a random quarter of the outer-train MMLU subjects
for the unseen split. Each recipe is fitted twice per outer fold: on inner-train (scored on
the validation chunk) and on the whole outer-train (scored on the outer test fold). Choose on
the ``val`` figures only; ``test`` is reported, never used to choose.

Recipes (``name`` or ``name:param``):

- ``ship[:alpha]``: the shipped recipe (features.py, CG ridge, 40 iterations, float16), alpha 30;
- ``bits20``: the same with 2**20 hash buckets instead of 2**18;
- ``cues[:alpha]``: an additive model of 40 subject-agnostic cues (the 14 shipped ones plus
  26 on stem/option structure and numbers), each cut into 8 quantile bins, ridge;
- ``knn[:k]``: ridge on kNN-smoothed targets, ``0.5 y + 0.5 * mean y`` of the k most
  similar outer/inner-train prompts (idf-weighted word 1-2-gram cosine);
- ``group[:lam]``: ridge on subject-smoothed targets, ``(1-lam) y + lam * subject mean``;
- ``pair``: pairwise logistic (linear RankNet) on 15,000 sampled ordered pairs, 50 L-BFGS steps;
- ``lpair``: two L2-logistic models (60 L-BFGS steps), score P(strong right) - P(weak right).

``--ensemble a+b*w`` rank-averages cached recipes (weight after ``*``) per evaluation set.
Needs scipy (the dev extra's scikit-learn brings it) for sparse products; finops itself trains
with numpy alone. Ends with two lines per recipe and split: its val and test saving at 95 %.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import pickle
import re
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.stats import rankdata

from finops.routing import features as F
from finops.routing.linear import ridge as linear_ridge
from finops.routing.metrics import evaluate
from finops.routing.model import load_labelled

DATA = Path(__file__).resolve().parent.parent.parent.parent / "shared" / "data" / "routing"
SPLITS = ("mmlu_seen", "mmlu_unseen", "gsm8k")
TARGETS = {"mmlu_seen": 0.65, "mmlu_unseen": 0.65, "gsm8k": 0.45}
Recipe = Callable[[np.ndarray, list[np.ndarray]], list[np.ndarray]]


class Data:
    """Labels, cached feature matrices and the outer/inner splits."""

    def __init__(self, data: Path, cache: Path, seed: int, folds: int) -> None:
        mm = load_labelled([data / "mmlu.jsonl.gz"])
        gg = load_labelled([data / "gsm8k.jsonl.gz"])
        rows = mm + gg
        self.texts = [r.prompt for r in rows]
        self.s = np.array([r.strong_correct for r in rows], float)
        self.w = np.array([r.weak_correct for r in rows], float)
        self.y = self.s - self.w
        self.n, self.n_m = len(rows), len(mm)
        self.subj = np.array([r.subject or "" for r in mm] + [""] * len(gg))
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)
        m_idx, g_idx = np.arange(self.n_m), np.arange(self.n_m, self.n)
        rng = np.random.default_rng(seed)  # the same draws, in order, as routing_quality.py
        subjects = self.subj[: self.n_m]
        uniq = rng.permutation(np.unique(subjects))
        self.splits = {
            "mmlu_seen": np.array_split(rng.permutation(m_idx), folds),
            "mmlu_unseen": [m_idx[np.isin(subjects, g)] for g in np.array_split(uniq, folds)],
            "gsm8k": np.array_split(rng.permutation(g_idx), folds),
        }
        self._m, self._g = m_idx, g_idx
        self._mats: dict[int, Any] = {}
        self.max_folds = folds

    def inner(self, name: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(inner-train, validation, outer-train, outer-test) row indices of fold ``k``."""
        test = self.splits[name][k]
        rng = np.random.default_rng(1000 + 7 * k + SPLITS.index(name))
        tr = np.setdiff1d(np.arange(self.n), test)
        if name == "mmlu_unseen":
            subs = rng.permutation(np.unique(self.subj[np.intersect1d(tr, self._m)]))
            val = self._m[np.isin(self.subj[self._m], subs[: len(subs) // 4])]
        else:
            pool = np.intersect1d(tr, self._m if name == "mmlu_seen" else self._g)
            val = np.sort(rng.permutation(pool)[: pool.size // 4])
        return np.setdiff1d(tr, val), val, tr, test

    def mats(self, bits: int) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
        """(char n-gram CSR, word 1-2-gram CSR, dense cues) exactly as features.py builds them."""
        if bits in self._mats:
            return self._mats[bits]  # type: ignore[no-any-return]
        path = self.cache / f"feats{bits}.pkl"
        if path.exists():
            self._mats[bits] = pickle.loads(path.read_bytes())
            return self._mats[bits]  # type: ignore[no-any-return]
        ci, cv, wi, wv, dense = [], [], [], [], []
        for t in self.texts:
            text = F._clip(t)
            low = text.lower()
            data = np.frombuffer(low.encode("utf-8", "replace"), dtype=np.uint8).astype(np.uint64)
            a, b = F._group(F._byte_ngrams(data), bits, 1)
            ci.append(a)
            cv.append(b)
            words = F._WORD.findall(low)
            toks = [zlib.crc32(x.encode()) for x in words]
            toks += [zlib.crc32(f"{x} {z}".encode()) for x, z in itertools.pairwise(words)]
            a, b = F._group(np.array(toks, dtype=np.uint64), bits, 2)
            wi.append(a)
            wv.append(b)
            dense.append(F._dense(text, words))

        def csr(ix: list[np.ndarray], vs: list[np.ndarray]) -> sp.csr_matrix:
            ptr = np.concatenate(([0], np.cumsum([len(i) for i in ix])))
            return sp.csr_matrix((np.concatenate(vs), np.concatenate(ix), ptr), shape=(self.n, 1 << bits))

        out = (csr(ci, cv), csr(wi, wv), np.array(dense))
        path.write_bytes(pickle.dumps(out))
        self._mats[bits] = out
        return out


def std_dense(d: np.ndarray, tr: np.ndarray) -> np.ndarray:
    return (d - d[tr].mean(0)) / (d[tr].std(0) + 1e-9)


class ScipyDesign:
    """The design as scipy sparse products, for :func:`finops.routing.linear.ridge` (same CG)."""

    def __init__(self, x: sp.csr_matrix, dense: np.ndarray) -> None:
        self.x, self.xt, self.dense, self.width = x, x.T.tocsr(), dense, int(x.shape[1])

    def matvec(self, w_sparse: np.ndarray, w_dense: np.ndarray) -> np.ndarray:
        return np.asarray(self.x @ w_sparse + self.dense @ w_dense)

    def rmatvec(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.xt @ u), np.asarray(self.dense.T @ u)


def ridge(x: sp.csr_matrix, y: np.ndarray, dense: np.ndarray, alpha: float, iters: int = 40) -> tuple[np.ndarray, np.ndarray, float]:
    """The shipped solver (finops.routing.linear.ridge: CG, tolerance 1e-6) on scipy products."""
    return linear_ridge(ScipyDesign(x, dense), y, alpha=alpha, dense_alpha=alpha * 10.0, iters=iters)


def logit(x: sp.csr_matrix, t: np.ndarray, alpha: Any, iters: int = 80) -> np.ndarray:
    """L2 logistic regression by L-BFGS (``alpha``: one penalty or one per column); intercept last."""
    xt = x.T.tocsr()

    def fg(p: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ p[:-1] + p[-1]
        g = 1.0 / (1.0 + np.exp(-z)) - t
        loss = float((np.logaddexp(0, z) - t * z).sum() + 0.5 * p[:-1] @ (alpha * p[:-1]))
        return loss, np.concatenate([xt @ g + alpha * p[:-1], [g.sum()]])

    res = minimize(fg, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": iters})
    return np.asarray(res.x)


_OPT = re.compile(r"^\s*\(?([A-J])[.)]\s+(.*)$", re.M)
_NUM = re.compile(r"-?\d+(?:[.,]\d+)*")


def extra_cues(t: str) -> list[float]:
    """26 subject-agnostic cues on the question stem, the answer options and the numbers."""
    opts = [o[1] for o in _OPT.findall(t)]
    stem = t.split("\nA.")[0] if "\nA." in t else t
    ol = [len(o) for o in opts] or [0]
    nums = _NUM.findall(stem)
    vals = []
    for v in nums:
        with contextlib.suppress(ValueError):
            vals.append(abs(float(v.replace(",", ""))))
    words = re.findall(r"\w+", stem)

    def has(pat: str, s: str = stem) -> float:
        return float(bool(re.search(pat, s, re.I)))

    return [
        np.log1p(len(stem)), np.log1p(len(words)),
        np.log1p(np.mean(ol)), np.log1p(np.std(ol)), np.log1p(max(ol)),
        float(any(re.search(r"(all|none|both|neither) of the (above|these)", o, re.I) for o in opts)),
        float(any(re.search(r"^(true|false)", o, re.I) for o in opts)),
        sum(bool(_NUM.search(o)) for o in opts) / max(len(opts), 1),
        np.log1p(len(nums)), np.log1p(len(set(nums))), np.log1p(max(vals) if vals else 0),
        has(r"\d\.\d"), has(r"\d/\d|fraction"), float("%" in stem or "percent" in stem.lower()),
        has(r"\$|\\\(|\\frac|\^|sqrt"), has(r"how many|how much"), has(r"which of the following"),
        has(r"\b(calculate|compute|find|solve|determine|evaluate)\b"),
        has(r"\b(passage|excerpt|according to|the author)\b"),
        np.log1p(stem.count(".")), np.log1p(stem.count(",")),
        float(np.mean([len(w) for w in words])) if words else 0.0,
        sum(1 for w in words if w[:1].isupper()) / max(len(words), 1),
        has(r"\b(why|explain|best)\b"), float(bool(re.search(r"\b(I|II|III|IV)\.", t))),
        float(len(opts) == 0),
    ]


def make_recipe(spec: str, d: Data) -> Recipe:
    name, _, arg = spec.partition(":")
    if name in ("ship", "bits20", "knn", "group"):
        bits = 20 if name == "bits20" else 18
        c, w, dense = d.mats(bits)
        x = (c + w).tocsr()
        alpha = float(arg) if name == "ship" and arg else 30.0
        nb = None
        if name == "knn":
            nb = knn_table(d, w)

        def fit(tr: np.ndarray, evs: list[np.ndarray]) -> list[np.ndarray]:
            ds = std_dense(dense, tr)
            yt = d.y[tr]
            if name == "knn":
                yt = knn_smooth(nb, d.y, tr, int(arg or 20))
            elif name == "group":
                yt = group_smooth(d, tr, float(arg or 0.5))
            ws, wd, b = ridge(x[tr], yt, ds[tr], alpha)
            ws = ws.astype(np.float16).astype(np.float64)
            return [x[e] @ ws + ds[e] @ wd + b for e in evs]

        return fit
    if name == "cues":
        cues = np.hstack([d.mats(18)[2], np.array([extra_cues(t) for t in d.texts])])
        alpha = float(arg or 1000.0)

        def fit_cues(tr: np.ndarray, evs: list[np.ndarray]) -> list[np.ndarray]:
            cols = []
            for j in range(cues.shape[1]):
                edges = np.unique(np.quantile(cues[tr, j], np.linspace(0, 1, 9)[1:-1]))
                b = np.searchsorted(edges, cues[:, j], side="right")
                oh = np.zeros((d.n, edges.size + 1))
                oh[np.arange(d.n), b] = 1.0
                cols.append(oh)
            bm = np.hstack(cols)
            bm -= bm[tr].mean(0)
            a = bm[tr].T @ bm[tr] + alpha * np.eye(bm.shape[1])
            coef = np.linalg.solve(a, bm[tr].T @ (d.y[tr] - d.y[tr].mean()))
            return [bm[e] @ coef for e in evs]

        return fit_cues
    if name in ("pair", "lpair"):
        c, w, dense = d.mats(18)
        x = (c + w).tocsr()
        alpha = float(arg or 3.0)

        def fit_lin(tr: np.ndarray, evs: list[np.ndarray]) -> list[np.ndarray]:
            xa = sp.hstack([x, sp.csr_matrix(std_dense(dense, tr))]).tocsr()
            if name == "lpair":
                pen = np.full(xa.shape[1], alpha)
                pen[x.shape[1] :] = alpha * 10.0  # dense cues: 10x, as in the ridge
                ps = logit(xa[tr], d.s[tr], pen, iters=60)
                pw = logit(xa[tr], d.w[tr], pen, iters=60)

                def sig(p: np.ndarray, e: np.ndarray) -> np.ndarray:
                    return np.asarray(1.0 / (1.0 + np.exp(-(xa[e] @ p[:-1] + p[-1]))))

                return [sig(ps, e) - sig(pw, e) for e in evs]
            rng = np.random.default_rng(0)
            hi, lo = rng.choice(tr, 60_000), rng.choice(tr, 60_000)
            keep = d.y[hi] > d.y[lo]
            hi, lo = hi[keep][:15_000], lo[keep][:15_000]
            sign = np.where(np.arange(hi.size) < hi.size // 2, 1.0, -1.0)
            diff = (sp.diags(sign) @ (xa[hi] - xa[lo])).tocsr()
            p = logit(diff, (sign > 0).astype(float), alpha, iters=50)
            return [xa[e] @ p[:-1] for e in evs]

        return fit_lin
    raise SystemExit(f"unknown recipe {spec!r}")


def knn_table(d: Data, w: sp.csr_matrix, k_max: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Top-100 neighbours of every prompt (idf-weighted word 1-2-gram cosine), cached."""
    path = d.cache / "knn_word.npz"
    if path.exists():
        z = np.load(path)
        return z["nb"], z["sim"]
    df = np.bincount(w.indices, minlength=w.shape[1])
    z_ = w @ sp.diags(np.log((1 + d.n) / (1 + df)) + 1)
    z_ = sp.diags(1 / (np.sqrt(np.asarray(z_.multiply(z_).sum(1)).ravel()) + 1e-12)) @ z_
    z_ = z_.tocsr()
    zt = z_.T.tocsr()
    nb = np.zeros((d.n, k_max), np.int32)
    sim = np.zeros((d.n, k_max), np.float32)
    for a in range(0, d.n, 1000):
        p = (z_[a : a + 1000] @ zt).toarray()
        p[np.arange(p.shape[0]), a + np.arange(p.shape[0])] = -1.0
        top = np.argpartition(-p, k_max, axis=1)[:, :k_max]
        ps = np.take_along_axis(p, top, 1)
        o = np.argsort(-ps, 1)
        nb[a : a + 1000], sim[a : a + 1000] = np.take_along_axis(top, o, 1), np.take_along_axis(ps, o, 1)
    np.savez(path, nb=nb, sim=sim)
    return nb, sim


def knn_smooth(table: Any, y: np.ndarray, tr: np.ndarray, k: int, lam: float = 0.5) -> np.ndarray:
    nb, sim = table[0][tr], table[1][tr]
    inside = np.zeros(y.size, bool)
    inside[tr] = True
    ok = inside[nb]
    use = ok & (np.cumsum(ok, 1) <= k)
    wts = np.where(use, np.maximum(sim, 0), 0.0)
    mean = (wts * y[nb]).sum(1) / np.maximum(wts.sum(1), 1e-12)
    return np.asarray((1 - lam) * y[tr] + lam * mean)


def group_smooth(d: Data, tr: np.ndarray, lam: float) -> np.ndarray:
    out = d.y[tr].copy()
    st = d.subj[tr]
    for s in np.unique(st):
        if s:
            m = st == s
            out[m] = (1 - lam) * d.y[tr][m] + lam * d.y[tr][m].mean()
    return out


def run(spec: str, d: Data, only: list[str], started: float) -> dict[tuple[str, int], Any]:
    path = d.cache / f"scores_{spec.replace(':', '_')}.pkl"
    out: dict[tuple[str, int], Any] = pickle.loads(path.read_bytes()) if path.exists() else {}
    recipe: Recipe | None = None
    for name in only:
        for k in range(min(len(d.splits[name]), d.max_folds)):
            if (name, k) in out:
                continue
            recipe = recipe or make_recipe(spec, d)
            itr, val, tr, test = d.inner(name, k)
            out[(name, k)] = (recipe(itr, [val])[0], recipe(tr, [test])[0])
            path.write_bytes(pickle.dumps(out))
            print(f"# {spec} {name} fold {k} {time.perf_counter() - started:.0f}s", flush=True)
    return out


def summary(label: str, out: dict[tuple[str, int], Any], d: Data, only: list[str]) -> None:
    for name in only:
        ks = sorted(k for (n, k) in out if n == name)
        v, t = [], []
        for k in ks:
            _, val, _, test = d.inner(name, k)
            v.append(evaluate(out[(name, k)][0], d.s[val], d.w[val]))
            t.append(evaluate(out[(name, k)][1], d.s[test], d.w[test]))
        vs, ts = np.mean([m.saving95 for m in v]) * 100, np.mean([m.saving95 for m in t]) * 100
        print(f"# {label} {name}: APGR val {np.mean([m.apgr for m in v]):.3f} test "
              f"{np.mean([m.apgr for m in t]):.3f}; val folds {[round(m.saving95 * 100, 1) for m in v]}")
        target = TARGETS[name] * 100
        print(f"{label} {name} saving at 95% (val): {vs:.1f} % (target: {target:.0f} %)")
        print(f"{label} {name} saving at 95% (test): {ts:.1f} % (target: {target:.0f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default="ship")
    parser.add_argument("--ensemble", action="append", default=[])
    parser.add_argument("--only", default=",".join(SPLITS))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/routing_nested"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-folds", type=int, default=99, help="run only the first N outer folds (smoke test)")
    args = parser.parse_args()
    started = time.perf_counter()
    d = Data(args.data, args.cache, args.seed, args.folds)
    d.max_folds = args.max_folds
    only = [s for s in args.only.split(",") if s]
    done: dict[str, Any] = {}
    specs = [r for r in args.recipes.split(",") if r]
    for ens in args.ensemble:
        specs += [m.split("*")[0] for m in ens.split("+")]
    for spec in dict.fromkeys(specs):
        done[spec] = run(spec, d, only, started)
    for spec in args.recipes.split(","):
        if spec:
            summary(spec, done[spec], d, only)
    for ens in args.ensemble:
        members = [(m.split("*")[0], float(m.split("*")[1]) if "*" in m else 1.0) for m in ens.split("+")]
        avg: dict[tuple[str, int], Any] = {}
        for key in done[members[0][0]]:
            avg[key] = tuple(
                sum(wt * rankdata(done[m][key][ph]) / done[m][key][ph].size for m, wt in members)
                for ph in (0, 1)
            )
        summary(f"rank({ens})", avg, d, only)


if __name__ == "__main__":
    main()
