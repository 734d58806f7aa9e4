"""Regenerate finops' price tables in pricing/ from the installed genai-prices package.

    pip install -e '.[sync]' && python scripts/sync_prices.py

Writes one reviewable JSON file per provider (prices as decimal strings per million tokens or
per thousand requests, date-constrained prices kept as a list, tiers, cache read/write 5m/1h,
batch/flex/priority variants, model-matching rules) and ``pricing/manifest.json`` (the table
version). finops never imports genai-prices at run time: these files are the runtime data.
Our own reviewed corrections live in ``pricing/overrides.json`` and are applied on load.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genai_prices import data_snapshot, types

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "pricing"


def clause(c: Any) -> dict[str, Any]:
    """A genai-prices match clause as plain JSON."""
    name = type(c).__name__
    if name == "ClauseEquals":
        return {"equals": c.equals}
    if name == "ClauseStartsWith":
        return {"starts_with": c.starts_with}
    if name == "ClauseEndsWith":
        return {"ends_with": c.ends_with}
    if name == "ClauseContains":
        return {"contains": c.contains}
    if name == "ClauseRegex":
        return {"regex": c.regex}
    if name == "ClauseOr":
        return {"or": [clause(x) for x in c.or_]}
    if name == "ClauseAnd":
        return {"and": [clause(x) for x in c.and_]}
    raise ValueError(f"unknown match clause {name}")


def price_value(v: Any) -> Any:
    if isinstance(v, types.TieredPrices):
        return {"base": str(v.base), "tiers": [[t.start, str(t.price)] for t in v.tiers]}
    return str(v)


def prices(p: types.ModelPrice) -> dict[str, Any]:
    return {
        k: price_value(v)
        for k, v in sorted(p.__dict__.items())
        if v is not None and not k.startswith("_")
    }


def constraint(c: Any) -> dict[str, Any] | None:
    if c is None:
        return None
    if isinstance(c, types.StartDateConstraint):
        return {"start_date": c.start_date.isoformat()}
    if isinstance(c, types.TimeOfDateConstraint):
        return {"start_time": c.start_time.isoformat(), "end_time": c.end_time.isoformat()}
    raise ValueError(f"unknown constraint {c!r}")


def model(m: types.ModelInfo) -> dict[str, Any]:
    if isinstance(m.prices, types.ModelPrice):
        price_list = [{"constraint": None, "prices": prices(m.prices)}]
    else:
        price_list = [
            {"constraint": constraint(c.constraint), "prices": prices(c.prices)} for c in m.prices
        ]
    out: dict[str, Any] = {"id": m.id, "match": clause(m.match), "prices": price_list}
    if m.name:
        out["name"] = m.name
    if m.context_window:
        out["context_window"] = m.context_window
    if m.deprecated:
        out["deprecated"] = True
    if m.price_variants:
        out["variants"] = [
            {
                "when": dict(v.when),
                "constraint": constraint(v.constraint),
                "prices": prices(v.prices),
            }
            for v in m.price_variants
        ]
    return out


def main() -> int:
    import genai_prices

    snapshot = data_snapshot.get_snapshot()
    OUT.mkdir(exist_ok=True)
    digest = hashlib.sha256()
    order = []
    for p in snapshot.providers:
        doc = {
            "schema": 1,
            "provider": {
                "id": p.id,
                "name": p.name,
                "api_pattern": p.api_pattern,
                "model_match": clause(p.model_match) if p.model_match else None,
                "provider_match": clause(p.provider_match) if p.provider_match else None,
                "fallback_model_providers": list(
                    getattr(p, "fallback_model_providers", None) or []
                ),
                "pricing_urls": list(p.pricing_urls or []),
            },
            "models": [model(m) for m in p.models],
        }
        text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        (OUT / f"{p.id}.json").write_text(text, encoding="utf-8")
        digest.update(text.encode())
        order.append(p.id)
    version_of = getattr(genai_prices, "__version__", None) or _dist_version()
    manifest = {
        "source": f"genai-prices {version_of}",
        "generated": datetime.now(UTC).date().isoformat(),
        # genai-prices' order: provider guessing tries them in this order. The provider sections
        # are repeated here so finops can guess a provider without loading every table.
        "providers": order,
        "provider_info": {
            pid: json.loads((OUT / f"{pid}.json").read_text())["provider"] for pid in order
        },
        "content_sha256": digest.hexdigest(),
        "version": f"gp{version_of}-{digest.hexdigest()[:10]}",
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(order)} provider tables, version {manifest['version']}")
    return 0


def _dist_version() -> str:
    from importlib.metadata import version

    return version("genai-prices")


if __name__ == "__main__":
    sys.exit(main())
