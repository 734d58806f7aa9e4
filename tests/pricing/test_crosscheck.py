"""finops' cost equals genai_prices.calc_price exactly (Decimal equality).

Models are picked programmatically from finops' own tables (OpenAI, Anthropic, Google,
Mistral, DeepSeek); genai-prices (a dev dependency) is the independent reference. Every
model is priced under the usage shapes that apply to it (plain, cached read, cache write
5m, cache write 1h, reasoning, >200k/272k tier, audio, web search), at two dates, and under
the request variants (batch, flex, priority) its table has.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from finops.pricing import PriceBook, default_tables_dir
from finops.pricing.match import match_clause
from finops.pricing.schema import BuiltinOverrides
from finops.usage import Usage

genai_prices = pytest.importorskip("genai_prices")

PROVIDERS = ("openai", "anthropic", "google", "mistral", "deepseek")
PER_PROVIDER = 16
DATES = (datetime(2026, 11, 20, 12, 0, tzinfo=UTC), datetime(2025, 6, 1, 9, 0, tzinfo=UTC))
TABLES = default_tables_dir()
UNITS: dict[str, Any] = json.loads((TABLES / "units.json").read_text())["units"]
CORRECTED = {
    (c.provider, c.model)
    for c in BuiltinOverrides.model_validate(
        json.loads((TABLES / "overrides.json").read_text())
    ).corrections
}

# Same cells as finops.pricing.book._CELLS: the dimensions of each disjoint Usage field.
CELLS = {
    "input_tokens": {"direction": "input", "modality": "text"},
    "cache_read_tokens": {"direction": "input", "modality": "text", "token_type": "cache_read"},
    "cache_write_5m_tokens": {
        "direction": "input",
        "modality": "text",
        "token_type": "cache_write",
        "cache_ttl": "5m",
    },
    "cache_write_1h_tokens": {
        "direction": "input",
        "modality": "text",
        "token_type": "cache_write",
        "cache_ttl": "1h",
    },
    "input_audio_tokens": {"direction": "input", "modality": "audio"},
    "cache_read_audio_tokens": {
        "direction": "input",
        "modality": "audio",
        "token_type": "cache_read",
    },
    "output_tokens": {"direction": "output", "modality": "text"},
    "reasoning_tokens": {"direction": "output", "modality": "text", "token_type": "reasoning"},
    "output_audio_tokens": {"direction": "output", "modality": "audio"},
}


def reference_usage(u: Usage) -> Any:
    """genai-prices' Usage for ours: every token unit reported as the sum of the disjoint
    cells it contains (genai-prices' input_tokens is *total* input, cache reads included)."""
    values: dict[str, int] = {}
    for key, unit in UNITS.items():
        dims = unit["dimensions"]
        if dims.get("family") != "tokens":
            continue
        want = {k: v for k, v in dims.items() if k != "family"}
        values[key] = sum(
            getattr(u, name) for name, cell in CELLS.items() if want.items() <= cell.items()
        )
    searches = u.server_tool_requests.get("web_search")
    if searches:
        values["web_searches"] = searches
    return genai_prices.Usage(**values)


def _latest(model: dict[str, Any]) -> dict[str, Any]:
    return dict(model["prices"][-1]["prices"])


def _tiered(model: dict[str, Any]) -> int | None:
    starts = [
        v["tiers"][0][0]
        for s in model["prices"]
        for v in s["prices"].values()
        if isinstance(v, dict) and v["tiers"]
    ]
    return min(starts) if starts else None


def pick_models(provider: str) -> list[dict[str, Any]]:
    data = json.loads((TABLES / f"{provider}.json").read_text())
    picked = []
    for model in data["models"]:
        prices = _latest(model)
        if (
            "input_mtok" in prices
            and "output_mtok" in prices
            # the reference resolves the id the same way only if its own rule accepts it
            and match_clause(model["match"], model["id"])
            and (provider, model["id"]) not in CORRECTED
        ):
            picked.append(model)
    # spread the pick over the table (old and new models), always keeping tiered/audio ones
    special = [m for m in picked if _tiered(m) or "input_audio_mtok" in _latest(m)]
    step = max(1, len(picked) // PER_PROVIDER)
    chosen = {m["id"]: m for m in picked[::step][:PER_PROVIDER]}
    for m in special[:4]:
        chosen.setdefault(m["id"], m)
    return list(chosen.values())


def shapes(model: dict[str, Any]) -> dict[str, Usage]:
    keys = set().union(*(s["prices"] for s in model["prices"]))
    out = {
        "plain": Usage(input_tokens=1200, output_tokens=350),
        "cached_read": Usage(input_tokens=300, cache_read_tokens=2048, output_tokens=120),
        "cache_write_5m": Usage(input_tokens=40, cache_write_5m_tokens=5000, output_tokens=60),
        "reasoning": Usage(input_tokens=500, output_tokens=200, reasoning_tokens=1800),
        "everything_small": Usage(
            input_tokens=7,
            cache_read_tokens=11,
            cache_write_5m_tokens=13,
            cache_write_1h_tokens=17,
            output_tokens=19,
            reasoning_tokens=23,
        ),
    }
    if "cache_write_1h_mtok" in keys:
        out["cache_write_1h"] = Usage(
            input_tokens=40, cache_write_1h_tokens=5000, cache_read_tokens=100, output_tokens=60
        )
    tier = _tiered(model)
    if tier is not None:
        out["above_tier"] = Usage(
            input_tokens=tier - 5_000, cache_read_tokens=5_001, output_tokens=4000
        )
        out["at_tier"] = Usage(input_tokens=tier - 5_000, cache_read_tokens=5_000, output_tokens=1)
    if "input_audio_mtok" in keys or "output_audio_mtok" in keys:
        out["audio"] = Usage(
            input_tokens=100,
            input_audio_tokens=3000,
            cache_read_tokens=64,
            cache_read_audio_tokens=128 if "cache_audio_read_mtok" in keys else 0,
            output_tokens=50,
            output_audio_tokens=900,
        )
    if "web_searches_kcount" in keys:
        out["web_search"] = Usage(
            input_tokens=800, output_tokens=300, server_tool_requests={"web_search": 3}
        )
    return out


CASES = [(p, m) for p in PROVIDERS for m in pick_models(p)]


def _contexts(model: dict[str, Any]) -> list[dict[str, str]]:
    seen = []
    for v in model.get("variants", []):
        if (
            v["when"]
            in (
                {"processing": "batch"},
                {"service_tier": "flex"},
                {"service_tier": "priority"},
            )
            and v["when"] not in seen
        ):
            seen.append(v["when"])
    return seen


def test_enough_models_and_shapes() -> None:
    assert len(CASES) >= 50
    assert {p for p, _ in CASES} == set(PROVIDERS)
    assert all(len(shapes(m)) >= 5 for _, m in CASES)
    assert sum(len(shapes(m)) for _, m in CASES) >= 400
    assert sum(1 for _, m in CASES if _tiered(m)) >= 5
    assert sum(1 for _, m in CASES if "audio" in shapes(m)) >= 2
    assert sum(1 for _, m in CASES if "cache_write_1h" in shapes(m)) >= 5


@pytest.mark.parametrize(("provider", "model"), CASES, ids=[f"{p}:{m['id']}" for p, m in CASES])
def test_cost_equals_genai_prices(provider: str, model: dict[str, Any]) -> None:
    book = PriceBook.default()
    checked = 0
    for at in DATES:
        for name, usage in shapes(model).items():
            ours = book.price(provider=provider, model=model["id"], usage=usage, at=at)
            ref = genai_prices.calc_price(
                reference_usage(usage),
                model["id"],
                provider_id=provider,
                genai_request_timestamp=at,
            )
            assert ours.status == "priced"
            assert ours.model_ref == ref.model.id
            assert ours.total == ref.total_price, (model["id"], name, at)
            assert (
                ours.input + ours.cache_read + ours.cache_write + ours.output + ours.tools
                == ours.total
            )
            checked += 1
        # request variants: the provider's own batch / flex / priority prices
        for context in _contexts(model):
            usage = shapes(model)["cached_read"]
            ours = book.price(
                provider=provider,
                model=model["id"],
                usage=usage,
                at=DATES[0],
                batch=context.get("processing") == "batch",
                service_tier=context.get("service_tier"),
            )
            ref = genai_prices.calc_price(
                reference_usage(usage),
                model["id"],
                provider_id=provider,
                genai_request_timestamp=DATES[0],
                price_context=context,
            )
            assert ours.total == ref.total_price, (model["id"], context)
    assert checked >= 10


@pytest.mark.parametrize("hour", [2, 12, 17])
def test_deepseek_time_of_day_prices_match(hour: int) -> None:
    at = datetime(2026, 11, 20, hour, 15, tzinfo=UTC)
    usage = Usage(input_tokens=1000, cache_read_tokens=4000, output_tokens=700)
    data = json.loads((TABLES / "deepseek.json").read_text())
    windowed = [
        m["id"]
        for m in data["models"]
        if any((s["constraint"] or {}).get("start_time") for s in m["prices"])
    ]
    assert windowed
    for model in windowed:
        ours = PriceBook.default().price(provider="deepseek", model=model, usage=usage, at=at)
        ref = genai_prices.calc_price(
            reference_usage(usage), model, provider_id="deepseek", genai_request_timestamp=at
        )
        assert ours.total == ref.total_price, (model, hour)
