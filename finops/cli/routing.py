"""``finops routing train|eval|score``: train a router on labelled prompts, measure it, score.

A thin shell over :mod:`finops.routing` (``train``, ``load_model``, ``evaluate``).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer

__all__ = ["register"]

routing_app = typer.Typer(
    name="routing",
    help="Train, evaluate and run the offline router (easy prompts → cheaper models).",
    no_args_is_help=True,
    add_completion=False,
)


def _load(model: Path | None):  # type: ignore[no-untyped-def]
    from finops.routing.model import default_model, load_model

    return default_model() if model is None else load_model(model)


@routing_app.command("train")
def train_cmd(
    data: list[Path] = typer.Option(..., "--data", help="JSON-lines file(s) with prompt, "
                                    "strong_correct, weak_correct (.gz allowed)."),
    out: Path = typer.Option(..., "--out", help="Directory to write router.npz + router.json."),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out calibration split."),
) -> None:
    """Train a router (deterministic for a seed) and write it to --out."""
    from finops.routing.model import load_labelled, train

    rows = load_labelled(data)
    command = "finops routing " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    model = train(rows, seed=seed, sources=data, command=command)
    model.save(out)
    held = model.meta["holdout_metrics"]
    typer.echo(
        f"trained on {len(rows)} prompts in {model.meta['train_seconds']} s → {out} "
        f"(version {model.version}); held-out APGR {held['apgr']:.3f}, "
        f"saving at 95% {held['saving95'] * 100:.1f}%"
    )


@routing_app.command("eval")
def eval_cmd(
    data: list[Path] = typer.Option(..., "--data", help="Labelled JSON-lines file(s)."),
    model: Path | None = typer.Option(None, "--model", help="Model dir (default: shipped)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    plot: Path | None = typer.Option(None, "--plot", help="Save the quality–cost curve (PNG)."),
    price_ratio: float | None = typer.Option(
        None, "--price-ratio", help="weak/strong price ratio, adds the saving at real prices."
    ),
) -> None:
    """APGR, CPT(50%), CPT(80%) and saving at 95% quality: router, random and oracle."""
    import numpy as np

    from finops.routing.metrics import evaluate, oracle_scores, quality_curve, random_metrics
    from finops.routing.model import load_labelled

    rows = load_labelled(data)
    router = _load(model)
    scores = router.scores([r.prompt for r in rows])
    s = np.array([r.strong_correct for r in rows], dtype=np.float64)
    w = np.array([r.weak_correct for r in rows], dtype=np.float64)
    results = {
        "router": evaluate(scores, s, w, price_ratio=price_ratio),
        "random": random_metrics(s, w, price_ratio=price_ratio),
        "oracle": evaluate(oracle_scores(s, w), s, w, price_ratio=price_ratio),
    }
    if plot is not None:
        from finops.routing.plot import save_curve_png

        curves = []
        for name, sc in (("router", scores), ("oracle", oracle_scores(s, w))):
            c, q = quality_curve(sc, s, w)
            curves.append((name, c, q))
        c = np.linspace(0, 1, 101)
        curves.append(("random", c, w.mean() + c * (s.mean() - w.mean())))
        save_curve_png(plot, curves, target=0.95 * float(s.mean()),
                       title=f"{len(rows)} prompts, model {router.version}")
    if as_json:
        payload = {k: v.as_dict() for k, v in results.items()}
        typer.echo(json.dumps({**payload, "model_version": router.version}, indent=2))
        return
    typer.echo(f"{len(rows)} prompts; strong {s.mean():.3f}, weak {w.mean():.3f}; "
               f"model {router.version}")
    typer.echo(f"{'':8} {'APGR':>6} {'CPT(50%)':>9} {'CPT(80%)':>9} {'saving@95%':>11}")
    for name, m in results.items():
        typer.echo(f"{name:8} {m.apgr:6.3f} {m.cpt50 * 100:8.1f}% {m.cpt80 * 100:8.1f}% "
                   f"{m.saving95 * 100:10.1f}%"
                   + ("" if m.saving95_priced is None else f"  priced {m.saving95_priced:.1%}"))


@routing_app.command("score")
def score_cmd(
    data: list[Path] = typer.Option(..., "--data", help="JSON-lines file(s) with prompt."),
    out: Path = typer.Option(..., "--out", help="Output JSON lines: id, score."),
    model: Path | None = typer.Option(None, "--model", help="Model dir (default: shipped)."),
) -> None:
    """Write one JSON line per prompt: id and score (higher = strong model needed)."""
    import gzip

    router = _load(model)
    n = 0
    with out.open("w", encoding="utf-8") as fh:
        for path in data:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as src:
                for i, line in enumerate(src, 1):
                    if not line.strip():
                        continue
                    obj = json.loads(line)
                    rid = obj.get("id", f"{path.name}:{i}")
                    fh.write(json.dumps({"id": rid, "score": router.score(str(obj["prompt"]))})
                             + "\n")
                    n += 1
    typer.echo(f"scored {n} prompts → {out}")


def register(app: typer.Typer) -> None:
    """Add the ``routing`` sub-commands to the ``finops`` CLI."""
    app.add_typer(routing_app, name="routing")
