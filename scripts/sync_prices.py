"""Regenerate finops' price tables in ``pricing/`` from the installed genai-prices package.

    pip install -e '.[sync]' && python scripts/sync_prices.py [--check]

Writes, per provider, one pretty-printed, key-sorted JSON file (``pricing/<provider>.json``)
with everything finops needs to price a call offline:

* prices as decimal *strings* (USD per million tokens for ``*_mtok`` keys, per thousand for
  ``*_kcount`` keys), date-constrained price sets kept as a list (never overwritten), daily
  time windows (DeepSeek off-peak), cliff tiers keyed on total input tokens (``>200k``),
  cache read / write 5m / write 1h prices, audio prices, per-request tool prices;
* ``variants``: partial prices selected by the request (batch, flex, priority, fast...);
* the model-matching rules (genai-prices ``match`` clauses) so served ids such as
  ``claude-sonnet-4-5-20250929`` resolve; the context window where known.

Also ``pricing/units.json`` (what each price key measures: the dimensions finops uses to pick
the most specific price for each usage component, exactly as genai-prices does) and
``pricing/manifest.json`` (table version, provider order for guessing, per-file hashes).

finops never imports genai-prices at run time (it costs ~200 ms): these files are the runtime
data. finops' own reviewed corrections live in ``pricing/overrides.json`` (not written here).
``--check`` exits 1 when the committed tables differ from what the installed package gives.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, date, datetime, time
from decimal import Decimal
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from genai_prices import data_snapshot, types
from genai_prices.data_units import unit_data

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "pricing"
SCHEMA = 1
# Files in pricing/ that this script does not own.
NOT_GENERATED = {"overrides.json"}


def clause(c: Any) -> dict[str, Any]:
    """A genai-prices match clause as plain JSON (same keys as genai-prices' YAML)."""
    if isinstance(c, types.ClauseEquals):
        return {"equals": c.equals}
    if isinstance(c, types.ClauseStartsWith):
        return {"starts_with": c.starts_with}
    if isinstance(c, types.ClauseEndsWith):
        return {"ends_with": c.ends_with}
    if isinstance(c, types.ClauseContains):
        return {"contains": c.contains}
    if isinstance(c, types.ClauseRegex):
        return {"regex": c.regex}
    if isinstance(c, types.ClauseOr):
        return {"or": [clause(x) for x in c.or_]}
    if isinstance(c, types.ClauseAnd):
        return {"and": [clause(x) for x in c.and_]}
    raise ValueError(f"unknown match clause {c!r}: teach scripts/sync_prices.py about it")


def decimal_text(value: Decimal) -> str:
    """A price as a decimal string; refuses floats so no binary rounding sneaks in."""
    if not isinstance(value, Decimal):
        raise TypeError(f"expected a Decimal price, got {value!r}")
    return str(value)


def price_value(v: Any) -> Any:
    if isinstance(v, types.TieredPrices):
        return {
            "base": decimal_text(v.base),
            "tiers": [
                [t.start, decimal_text(t.price)] for t in sorted(v.tiers, key=lambda t: t.start)
            ],
        }
    return decimal_text(v)


def prices(p: types.ModelPrice) -> dict[str, Any]:
    return {
        k: price_value(v)
        for k, v in sorted(p.__dict__.items())
        if v is not None and not k.startswith("_")
    }


def utc_time(t: time) -> str:
    """A time of day in UTC (genai-prices treats naive times as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    as_utc = datetime.combine(date(1970, 1, 1), t).astimezone(UTC).time()
    return as_utc.isoformat()


def constraint(c: Any) -> dict[str, str] | None:
    if c is None:
        return None
    if isinstance(c, types.StartDateConstraint):
        return {"start_date": c.start_date.isoformat()}
    if isinstance(c, types.TimeOfDateConstraint):
        return {"start_time": utc_time(c.start_time), "end_time": utc_time(c.end_time)}
    raise ValueError(f"unknown price constraint {c!r}: teach scripts/sync_prices.py about it")


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


def provider_info(p: types.Provider) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "api_pattern": p.api_pattern,
        "model_match": clause(p.model_match) if p.model_match else None,
        "provider_match": clause(p.provider_match) if p.provider_match else None,
        "fallback_model_providers": list(p.fallback_model_providers or []),
        "pricing_urls": list(p.pricing_urls or []),
    }


def dump(doc: Any) -> str:
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """Every generated file name -> its text (deterministic for one genai-prices version)."""
    snapshot = data_snapshot.get_snapshot()
    files: dict[str, str] = {}
    for p in snapshot.providers:
        doc = {
            "schema": SCHEMA,
            "provider": provider_info(p),
            "models": [model(m) for m in p.models],
        }
        files[f"{p.id}.json"] = dump(doc)
    files["units.json"] = dump(
        {
            "schema": SCHEMA,
            "units": {
                key: {
                    "price_key": raw.get("price_key", key),
                    "per": raw["per"],
                    "dimensions": dict(raw.get("dimensions", {})),
                }
                for key, raw in unit_data.items()
            },
        }
    )
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode())
    content = digest.hexdigest()
    source_version = dist_version("genai-prices")
    previous = _read_previous_manifest()
    # The date says when the *content* last changed, so re-running the sync on another day
    # without a data change leaves the version (and git) untouched.
    if previous.get("content_sha256") == content and previous.get("generated"):
        generated = str(previous["generated"])
    else:
        generated = datetime.now(UTC).date().isoformat()
    order = [p.id for p in snapshot.providers]
    manifest = {
        "schema": SCHEMA,
        "source": f"genai-prices {source_version}",
        "generated": generated,
        "content_sha256": content,
        "version": f"{generated}.gp{source_version}.{content[:10]}",
        # genai-prices' order: provider guessing tries them in this order. The provider
        # sections are repeated here so finops guesses a provider without loading every table.
        "providers": order,
        "provider_info": {p.id: provider_info(p) for p in snapshot.providers},
        "files": {
            name: hashlib.sha256(text.encode()).hexdigest() for name, text in sorted(files.items())
        },
    }
    files["manifest.json"] = dump(manifest)
    return files


def _read_previous_manifest() -> dict[str, Any]:
    try:
        data = json.loads((OUT / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report whether pricing/ is up to date"
    )
    args = parser.parse_args(argv)
    files = render()
    stale = sorted(
        name
        for name, text in files.items()
        if not (OUT / name).exists() or (OUT / name).read_text(encoding="utf-8") != text
    )
    orphans = (
        sorted(
            f.name
            for f in OUT.glob("*.json")
            if f.name not in files and f.name not in NOT_GENERATED
        )
        if OUT.exists()
        else []
    )
    version = json.loads(files["manifest.json"])["version"]
    if args.check:
        if stale or orphans:
            print(
                f"pricing/ is out of date ({len(stale)} changed, {len(orphans)} removed): "
                f"run python scripts/sync_prices.py"
            )
            return 1
        print(f"pricing/ is up to date: {version}")
        return 0
    OUT.mkdir(exist_ok=True)
    for name in stale:
        (OUT / name).write_text(files[name], encoding="utf-8")
    for name in orphans:  # a provider genai-prices dropped
        (OUT / name).unlink()
    providers = len(json.loads(files["manifest.json"])["providers"])
    print(
        f"wrote {len(stale)} file(s), removed {len(orphans)}; {providers} providers, version {version}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
