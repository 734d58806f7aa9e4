"""The router model: hashed text features → one linear score, numpy only.

Score = predicted ``strong_correct - weak_correct`` for the prompt (ridge regression on the
per-prompt quality gain): higher means "the strong model is needed". The model directory
holds ``router.npz`` (weights, feature scaling, calibration curve) and ``router.json``
(provenance: data files and their sha256, seed, command, held-out metrics).

The calibration curve maps a cost share (share of traffic kept on the strong model) to the
quality retained (routed quality / strong-model quality), measured on a seeded held-out 20 %
of the training data, and to the score threshold that sends that share to the strong model.
Policies pick their threshold from it: "keep ≥ 95 % of quality" or "≤ 40 % on the strong
model", never a magic number.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from finops.errors import ConfigError
from finops.routing.features import DENSE_NAMES, featurize
from finops.routing.linear import design, ridge
from finops.routing.metrics import evaluate, quality_curve

__all__ = [
    "LabelledPrompt",
    "RouterModel",
    "default_model",
    "load_labelled",
    "load_model",
    "train",
]

F64 = npt.NDArray[np.float64]
MODEL_FILE = "router.npz"
META_FILE = "router.json"
_LEVELS = 101  # calibration points: cost share 0.00, 0.01, ..., 1.00


@dataclass(frozen=True, slots=True)
class LabelledPrompt:
    """One training/evaluation row (the schema of ``shared/data/routing``)."""

    id: str
    prompt: str
    strong_correct: bool
    weak_correct: bool
    subject: str | None = None


def load_labelled(paths: Iterable[str | Path]) -> list[LabelledPrompt]:
    """Read JSON-lines files (``.gz`` allowed) with ``prompt``, ``strong_correct``, ``weak_correct``."""
    rows: list[LabelledPrompt] = []
    for path in paths:
        p = Path(path)
        opener = gzip.open if p.suffix == ".gz" else open
        try:
            with opener(p, "rt", encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    obj = json.loads(line)
                    try:
                        rows.append(
                            LabelledPrompt(
                                id=str(obj.get("id", f"{p.name}:{n}")),
                                prompt=str(obj["prompt"]),
                                strong_correct=bool(obj["strong_correct"]),
                                weak_correct=bool(obj["weak_correct"]),
                                subject=obj.get("subject"),
                            )
                        )
                    except KeyError as missing:
                        raise ConfigError(
                            f"{p}:{n}: missing field {missing}; each line needs prompt, "
                            "strong_correct and weak_correct"
                        ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read routing data {p}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p}: not JSON lines ({exc})") from exc
    return rows


@dataclass(slots=True)
class RouterModel:
    """A trained router. :meth:`score` is the hot path (one prompt, numpy only)."""

    bits: int
    w_sparse: npt.NDArray[np.float32]
    w_dense: F64
    bias: float
    mean: F64
    std: F64
    curve_cost: F64  # cost share kept on the strong model, ascending
    curve_quality: F64  # quality retained (routed / strong), held-out
    curve_threshold: F64  # score threshold that keeps that share on the strong model
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def constant(cls, score: float) -> RouterModel:
        """A model scoring every prompt ``score`` (for testing policies and pipelines).

        Its calibration curve says 95 % of quality needs 75 % of traffic on the strong model,
        with score thresholds spread from 1.0 (cost share 0.01) to -1.0 (cost share 1.0).
        """
        k = len(DENSE_NAMES)
        levels = np.linspace(0.0, 1.0, _LEVELS)
        return cls(
            bits=8,
            w_sparse=np.zeros(1 << 8, np.float32),
            w_dense=np.zeros(k),
            bias=float(score),
            mean=np.zeros(k),
            std=np.ones(k),
            curve_cost=levels,
            curve_quality=0.8 + 0.2 * levels,
            curve_threshold=np.concatenate(([np.inf], np.linspace(1.0, -1.0, _LEVELS - 1))),
            meta={"version": f"const-{score}"},
        )

    @property
    def version(self) -> str:
        """Short content hash of the weights (recorded on ledger rows)."""
        return str(self.meta.get("version", "unversioned"))

    def score(self, text: str) -> float:
        """Router score of one prompt: higher means the strong model is needed."""
        f = featurize(text, self.bits)
        sparse = float(np.dot(self.w_sparse[f.indices].astype(np.float64), f.values))
        dense = float(np.dot((f.dense - self.mean) / self.std, self.w_dense))
        return sparse + dense + self.bias

    def scores(self, texts: Sequence[str]) -> F64:
        """Scores of many prompts."""
        return np.array([self.score(t) for t in texts], dtype=np.float64)

    def threshold_for_quality(self, keep: float) -> float:
        """Score threshold keeping at least ``keep`` (0..1) of the strong model's quality."""
        ok = np.flatnonzero(self.curve_quality >= keep - 1e-12)
        i = int(ok[0]) if ok.size else self.curve_cost.size - 1
        return float(self.curve_threshold[i])

    def threshold_for_share(self, strong_share: float) -> float:
        """Score threshold sending about ``strong_share`` (0..1) of traffic to the strong model."""
        i = int(np.searchsorted(self.curve_cost, min(max(strong_share, 0.0), 1.0) - 1e-12))
        return float(self.curve_threshold[min(i, self.curve_cost.size - 1)])

    def save(self, out: str | Path) -> Path:
        """Write ``router.npz`` and ``router.json`` under directory ``out``."""
        d = Path(out)
        d.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            d / MODEL_FILE,
            bits=np.array(self.bits),
            w_sparse=self.w_sparse.astype(np.float16),
            w_dense=self.w_dense,
            bias=np.array(self.bias),
            mean=self.mean,
            std=self.std,
            curve_cost=self.curve_cost,
            curve_quality=self.curve_quality,
            curve_threshold=self.curve_threshold,
        )
        (d / META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n")
        return d


def load_model(path: str | Path) -> RouterModel:
    """Load a model directory written by :meth:`RouterModel.save` / ``finops routing train``."""
    d = Path(path)
    npz = d / MODEL_FILE if d.is_dir() else d
    try:
        with np.load(npz) as z:
            model = RouterModel(
                bits=int(z["bits"]),
                w_sparse=z["w_sparse"].astype(np.float32),
                w_dense=z["w_dense"].astype(np.float64),
                bias=float(z["bias"]),
                mean=z["mean"].astype(np.float64),
                std=z["std"].astype(np.float64),
                curve_cost=z["curve_cost"].astype(np.float64),
                curve_quality=z["curve_quality"].astype(np.float64),
                curve_threshold=z["curve_threshold"].astype(np.float64),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"cannot load router model from {npz}: {exc}; train one with "
            "`finops routing train --data FILE --out DIR`"
        ) from exc
    meta_path = npz.with_name(META_FILE)
    if meta_path.exists():
        model.meta = json.loads(meta_path.read_text())
    return model


_DEFAULT: RouterModel | None = None


def default_model() -> RouterModel:
    """The router shipped with finops (trained on shared/data/routing; see its router.json)."""
    global _DEFAULT
    if _DEFAULT is None:
        ref = resources.files("finops.routing") / "data"
        with resources.as_file(ref) as d:
            _DEFAULT = load_model(Path(d))
    return _DEFAULT


def _fit(
    feats: list[Any],
    y: F64,
    bits: int,
    alpha: float,
    iters: int,
    start: tuple[F64, F64] | None = None,
) -> tuple[F64, F64, float, F64, F64]:
    dense = np.stack([f.dense for f in feats])
    mean = dense.mean(axis=0)
    std = dense.std(axis=0) + 1e-9
    x = design(feats, bits, mean, std)
    ws, wd, b = ridge(x, y, alpha=alpha, dense_alpha=alpha * 10.0, iters=iters, start=start)
    return ws, wd, b, mean, std


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def train(
    rows: Sequence[LabelledPrompt],
    *,
    seed: int = 0,
    bits: int = 18,
    alpha: float = 30.0,
    iters: int = 40,
    refit_iters: int = 15,
    holdout: float = 0.2,
    sources: Sequence[str | Path] = (),
    command: str = "",
) -> RouterModel:
    """Train a router on labelled prompts. Deterministic for a given ``seed``.

    A seeded ``holdout`` share is set aside to measure the calibration curve; the final
    weights are then fitted on all rows (warm-started, ``refit_iters`` CG iterations).
    ``holdout=0`` fits once and calibrates in-sample (for cross-validation loops).
    """
    if len(rows) < 20:
        raise ConfigError(f"need at least 20 labelled prompts to train a router, got {len(rows)}")
    started = time.perf_counter()
    feats = [featurize(r.prompt, bits) for r in rows]
    s = np.array([r.strong_correct for r in rows], dtype=np.float64)
    w = np.array([r.weak_correct for r in rows], dtype=np.float64)
    y = s - w
    levels = np.linspace(0.0, 1.0, _LEVELS)
    held: dict[str, Any] | None = None
    start = None
    if holdout > 0:
        perm = np.random.default_rng(seed).permutation(len(rows))
        n_hold = max(int(len(rows) * holdout), 10)
        hold, fit_rows = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
        ws, wd, b, mean, std = _fit([feats[i] for i in fit_rows], y[fit_rows], bits, alpha, iters)
        probe = RouterModel(bits, ws.astype(np.float32), wd, b, mean, std, *(np.zeros(1),) * 3)
        hold_scores = np.array([_score_feats(probe, feats[i]) for i in hold])
        cost, quality = quality_curve(hold_scores, s[hold], w[hold])
        held = evaluate(hold_scores, s[hold], w[hold]).as_dict()
        strong_q = max(float(s[hold].mean()), 1e-12)
        start = (ws, wd)
    ws, wd, b, mean, std = _fit(
        feats, y, bits, alpha, iters if start is None else refit_iters, start=start
    )
    model = RouterModel(bits, ws.astype(np.float32), wd, b, mean, std, *(np.zeros(1),) * 3)
    # float16 on disk: score with the rounded weights so thresholds match what loads back
    model.w_sparse = model.w_sparse.astype(np.float16).astype(np.float32)
    all_scores = np.array([_score_feats(model, f) for f in feats])
    if held is None:  # no held-out share: the curve is in-sample (optimistic), say so
        cost, quality = quality_curve(all_scores, s, w)
        strong_q = max(float(s.mean()), 1e-12)
    retained = np.interp(levels, cost, quality) / strong_q
    retained = np.maximum.accumulate(retained)  # a higher share never promises less quality
    thresholds = np.quantile(all_scores, 1.0 - levels, method="linear")
    thresholds[0] = np.inf  # cost 0: nothing goes to the strong model
    model.curve_cost, model.curve_quality, model.curve_threshold = levels, retained, thresholds
    digest = hashlib.sha256(model.w_sparse.tobytes() + wd.tobytes()).hexdigest()[:12]
    model.meta = {
        "version": f"hashridge-{digest}",
        "kind": "hashed byte 3-5-grams + word 1-2-grams + difficulty cues, ridge on "
        "strong_correct - weak_correct",
        "bits": bits,
        "alpha": alpha,
        "iters": iters,
        "seed": seed,
        "rows": len(rows),
        "dense_features": list(DENSE_NAMES),
        "data": [{"path": str(p), "sha256": _sha256(p)} for p in sources],
        "command": command,
        "holdout_share": holdout,
        "holdout_metrics": held,
        "calibration": "held-out" if held is not None else "in-sample",
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    return model


def _score_feats(model: RouterModel, f: Any) -> float:
    sparse = float(np.dot(model.w_sparse[f.indices].astype(np.float64), f.values))
    return sparse + float(np.dot((f.dense - model.mean) / model.std, model.w_dense)) + model.bias
