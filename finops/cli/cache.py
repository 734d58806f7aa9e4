"""``finops cache stats|clear|calibrate``: a thin shell over :mod:`finops.cache.admin` and
:mod:`finops.cache.calibrate`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import typer

__all__ = ["register"]

cache_app = typer.Typer(help="Response cache: stats, clear, calibrate the semantic guard.")


def _config(config: Path, store: str | None) -> tuple[Any, Path | None]:
    """(Cache, ledger path) from --store or the [cache] / [finops] tables of --config."""
    from finops.cache.config import Cache

    ledger: Path | None = None
    cache: Any = None
    if config.exists():
        data = tomllib.loads(config.read_text(encoding="utf-8"))
        if isinstance(data.get("cache"), dict):
            cache = Cache.from_mapping(data["cache"], base_dir=config.parent)
        led = data.get("finops", {}).get("ledger")
        if isinstance(led, str):
            ledger = (config.parent / led).resolve()
    if store is not None:
        cache = Cache(store=store) if cache is None else cache.model_copy(update={"store": store})
    if cache is None:
        raise typer.BadParameter(f"no [cache] table in {config}; pass --store or --config")
    return cache, ledger


_CONFIG = typer.Option(Path("finops.toml"), "--config", "-c", help="finops.toml with [cache].")
_STORE = typer.Option(None, "--store", help="Cache store URL (default: [cache] store).")


@cache_app.command("stats")
def stats(
    config: Path = _CONFIG,
    store: str | None = _STORE,
    ledger: Path | None = typer.Option(None, "--ledger", help="Ledger (default: [finops] ledger)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Entries, size, hit rate, hits per tier and money saved by tag."""
    from finops.cache.admin import cache_stats

    cache, default_ledger = _config(config, store)
    s = cache_stats(cache, ledger or default_ledger)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "store": s.store,
                    "entries": s.entries,
                    "bytes": s.bytes,
                    "lookups": s.lookups,
                    "hit_rate": s.hit_rate,
                    "hits_by_tier": s.hits_by_tier,
                    "saved_usd": str(s.saved),
                    "saved_by_tag": [
                        {"tag": k, "value": v, "hits": n, "saved_usd": str(m)}
                        for k, v, n, m in s.saved_by_tag
                    ],
                },
                indent=2,
            )
        )
        return
    typer.echo(f"store: {s.store}  entries: {s.entries}  size: {s.bytes / 1e6:.2f} MB")
    rate = "-" if s.hit_rate is None else f"{s.hit_rate:.1%}"
    looks = ", ".join(f"{k} {v}" for k, v in sorted(s.lookups.items())) or "none recorded"
    typer.echo(f"lookups: {looks}  hit rate: {rate}")
    tiers = ", ".join(f"{k} {v}" for k, v in sorted(s.hits_by_tier.items())) or "-"
    typer.echo(f"hits by tier: {tiers}")
    typer.echo(f"saved: ${s.saved:,.6f}")
    for k, v, n, m in s.saved_by_tag:
        typer.echo(f"  {k}={v}: {n} hits, ${m:,.6f} saved")


@cache_app.command("clear")
def clear(
    config: Path = _CONFIG,
    store: str | None = _STORE,
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant (tag value)."),
    older_than: str | None = typer.Option(
        None, "--older-than", help="Only entries older than e.g. 30d."
    ),
) -> None:
    """Delete cached answers (all, one tenant's, or the old ones)."""
    from finops.cache.admin import clear_cache

    cache, _ = _config(config, store)
    removed = clear_cache(cache, tenant=tenant, older_than=older_than)
    typer.echo(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {cache.store}")


@cache_app.command("calibrate")
def calibrate_cmd(
    pairs: Path = typer.Option(..., "--pairs", help="JSON lines {a, b, duplicate} (.gz ok)."),
    target_false_hit: float = typer.Option(0.01, "--target-false-hit", help="e.g. 0.01"),
    definition: str = typer.Option(
        "served",
        "--definition",
        help="served (share of hits wrong) or negatives (share of non-duplicates served).",
    ),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N shuffled pairs."),
    seed: int = typer.Option(0, "--seed", help="Shuffle seed of the split."),
    out: Path | None = typer.Option(None, "--out", help="Write the guard file here."),
    model: str = typer.Option(
        "trees",
        "--model",
        help="trees (the shipped form; needs scikit-learn to fit) or logistic.",
    ),
) -> None:
    """Fit the semantic guard + threshold on a train split; report on a held-out split."""
    from finops.cache.calibrate import calibrate, load_pairs
    from finops.cache.semantic import MiniLMEmbedder

    if definition not in ("served", "negatives"):
        raise typer.BadParameter("--definition must be 'served' or 'negatives'")
    if model not in ("trees", "logistic"):
        raise typer.BadParameter("--model must be 'trees' or 'logistic'")
    data = load_pairs(pairs, limit=limit, seed=seed)
    result = calibrate(
        data,
        embedder=MiniLMEmbedder(threads=2),
        target_false_hit=target_false_hit,
        definition=definition,  # type: ignore[arg-type]
        source=f"{pairs.name} (limit={limit}, seed={seed})",
        model=model,  # type: ignore[arg-type]
    )
    h, c = result.held_out, result.cosine_only
    typer.echo(
        f"pairs: {json.dumps(result.guard.provenance['pairs'])}  threshold: {result.guard.threshold:.4f}"
    )
    for name, r in (("guard", h), ("cosine only", c)):
        typer.echo(
            f"{name:12s} held-out: precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
            f"false hits among served {r['false_hits_served']:.2%} (95% CI "
            f"{r['false_hits_served_ci95'][0]:.2%}–{r['false_hits_served_ci95'][1]:.2%})  "
            f"non-duplicates served {r['false_hits_negatives']:.2%} (95% CI "
            f"{r['false_hits_negatives_ci95'][0]:.2%}–{r['false_hits_negatives_ci95'][1]:.2%})"
        )
    if out is not None:
        out.write_text(json.dumps(result.guard.to_json(), separators=(",", ":")), encoding="utf-8")
        typer.echo(f"wrote {out}; use it with finops.Cache(semantic=True, guard_file='{out}')")


def register(app: typer.Typer) -> None:
    """Add ``finops cache ...`` to the CLI."""
    app.add_typer(cache_app, name="cache")
