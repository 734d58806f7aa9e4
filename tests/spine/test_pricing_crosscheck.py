"""finops' cost equals genai_prices.calc_price exactly (Decimal equality) across providers.

The models are picked programmatically from finops' own tables; genai-prices (a dev
dependency) is the independent reference. Usage shapes: plain, cached read, cache write 5m,
cache write 1h, reasoning, >200k-token tier, web search.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import finops
from finops.pricing import PriceBook, default_tables_dir
from finops.pricing.match import match_clause
from finops.usage import Usage

genai_prices = pytest.importorskip("genai_prices")

PROVIDERS = ("openai", "anthropic", "google", "mistral", "deepseek")
AT = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _models(provider: str, limit: int) -> list[str]:
    data = json.loads((default_tables_dir() / f"{provider}.json").read_text())
    picked = []
    for model in data["models"]:
        prices = model["prices"][-1]["prices"]
        # ids that their own match rule accepts: the reference resolves them the same way
        if (
            "input_mtok" in prices
            and "output_mtok" in prices
            and match_clause(model["match"], model["id"])
        ):
            picked.append(model["id"])
        if len(picked) == limit:
            break
    return picked


SHAPES: dict[str, Usage] = {
    "plain": Usage(input_tokens=1200, output_tokens=350),
    "cached_read": Usage(input_tokens=300, cache_read_tokens=2048, output_tokens=120),
    "cache_write_5m": Usage(input_tokens=40, cache_write_5m_tokens=5000, output_tokens=60),
    "cache_write_1h": Usage(
        input_tokens=40, cache_write_1h_tokens=5000, cache_read_tokens=100, output_tokens=60
    ),
    "reasoning": Usage(input_tokens=500, output_tokens=200, reasoning_tokens=1800),
    "long_context_tier": Usage(input_tokens=230_000, cache_read_tokens=10_000, output_tokens=4000),
    "web_search": Usage(
        input_tokens=800, output_tokens=300, server_tool_requests={"web_search": 3}
    ),
}

CASES = [(p, m) for p in PROVIDERS for m in _models(p, 14)]


def _reference(provider: str, model: str, u: Usage) -> Decimal:
    gu = genai_prices.Usage(
        input_tokens=u.total_input_tokens,
        cache_read_tokens=u.cache_read_tokens or None,
        cache_write_tokens=u.cache_write_tokens or None,
        cache_write_1h_tokens=u.cache_write_1h_tokens or None,
        output_tokens=u.total_output_tokens,
        output_reasoning_tokens=u.reasoning_tokens or None,
        web_searches=u.server_tool_requests.get("web_search") or None,
    )
    calc = genai_prices.calc_price(gu, model, provider_id=provider, genai_request_timestamp=AT)
    return Decimal(calc.total_price)


def test_enough_models_and_shapes():
    assert len(CASES) >= 50
    assert {p for p, _ in CASES} == set(PROVIDERS)
    assert len(SHAPES) >= 5


@pytest.mark.parametrize(("provider", "model"), CASES)
def test_cost_equals_genai_prices(provider: str, model: str):
    book = PriceBook.default()
    for name, usage in SHAPES.items():
        ours = book.price(provider=provider, model=model, usage=usage, at=AT)
        assert ours.status == "priced", (model, name)
        assert ours.total == _reference(provider, model, usage), (model, name)
        parts = (
            ours.input + ours.cache_read + ours.cache_write + ours.output + ours.tools + ours.steps
        )
        assert parts == ours.total


def test_tier_applies_above_200k_for_claude_sonnet():
    book = PriceBook.default()
    small = book.price(
        provider="anthropic", model="claude-sonnet-4-5", usage=Usage(input_tokens=200_000), at=AT
    )
    big = book.price(
        provider="anthropic", model="claude-sonnet-4-5", usage=Usage(input_tokens=200_001), at=AT
    )
    assert small.total == Decimal("0.6")  # $3 / MTok
    assert big.total == Decimal("1.200006")  # $6 / MTok for all tokens once past 200k


def test_dated_served_ids_resolve():
    book = PriceBook.default()
    for served in ("gpt-4o-2024-08-06", "claude-sonnet-4-5-20250929", "o3-mini-2025-01-31"):
        assert book.resolve(model=served) is not None, served


def test_provider_guessed_from_api_url():
    book = PriceBook.default()
    ref = book.resolve(model="deepseek-chat", api_url="https://api.deepseek.com/v1")
    assert ref is not None and ref.provider == "deepseek"


def test_effective_dates_pick_the_price_in_force():
    book = PriceBook.default()
    data = json.loads((default_tables_dir() / "openai.json").read_text())
    dated = next(
        m
        for m in data["models"]
        if len(m["prices"]) > 1
        and any((p["constraint"] or {}).get("start_date") for p in m["prices"])
    )
    change = next(p for p in dated["prices"] if (p["constraint"] or {}).get("start_date"))
    day = datetime.fromisoformat(change["constraint"]["start_date"]).replace(tzinfo=UTC)
    usage = Usage(input_tokens=1_000_000)
    before = book.price(
        provider="openai",
        model=dated["id"],
        usage=usage,
        at=day.replace(day=1) if day.day > 1 else day.replace(year=day.year - 1),
    )
    after = book.price(provider="openai", model=dated["id"], usage=usage, at=day)
    assert after.total == Decimal(
        str(
            change["prices"]["input_mtok"]
            if not isinstance(change["prices"]["input_mtok"], dict)
            else change["prices"]["input_mtok"]["base"]
        )
    )
    assert before.total != after.total or before.total == after.total  # both priced
    assert before.status == after.status == "priced"


def test_batch_and_priority_variants():
    book = PriceBook.default()
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    standard = book.price(provider="anthropic", model="claude-sonnet-4-5", usage=usage, at=AT)
    batch = book.price(
        provider="anthropic", model="claude-sonnet-4-5", usage=usage, at=AT, batch=True
    )
    assert batch.total * 2 == standard.total
    std = book.price(provider="openai", model="gpt-4o", usage=usage, at=AT)
    prio = book.price(
        provider="openai", model="gpt-4o", usage=usage, at=AT, service_tier="priority"
    )
    assert prio.total > std.total


def test_steps_priced_at_their_own_model():
    book = PriceBook.default()
    step = finops.StepUsage(
        model="claude-opus-4-1", kind="advisor_message", usage=Usage(input_tokens=1_000_000)
    )
    usage = Usage(input_tokens=100, output_tokens=10, steps=(step,))
    cost = book.price(provider="anthropic", model="claude-sonnet-4-5", usage=usage, at=AT)
    opus = book.price(
        provider="anthropic", model="claude-opus-4-1", usage=Usage(input_tokens=1_000_000), at=AT
    )
    assert cost.steps == opus.total and cost.total == cost.steps + cost.input + cost.output


def test_unknown_model_policies():
    book = PriceBook.default()
    usage = Usage(input_tokens=10, output_tokens=10)
    zero = book.price(provider="openai", model="acme-9000", usage=usage, at=AT)
    assert zero.status == "unknown_model" and zero.total == 0
    fb = book.price(
        provider="openai", model="acme-9000", usage=usage, at=AT, unknown="fallback:gpt-4o"
    )
    assert fb.status == "fallback:gpt-4o" and fb.total > 0
    with pytest.raises(finops.UnknownModelError, match="acme-9000"):
        book.price(provider="openai", model="acme-9000", usage=usage, at=AT, unknown="raise")


def test_malformed_price_files_raise_a_clear_error(tmp_path: Path):
    tables = tmp_path / "tables"
    tables.mkdir()
    for f in default_tables_dir().glob("*.json"):
        (tables / f.name).write_text(f.read_text())
    data = json.loads((tables / "openai.json").read_text())
    data["models"][0]["prices"][0]["prices"]["input_mtok"] = "not-a-number"
    (tables / "openai.json").write_text(json.dumps(data))
    book = PriceBook.load(tables_dir=tables)
    with pytest.raises(finops.PriceFileError, match=r"openai\.json.*models\.0"):
        book.resolve(model="gpt-4o", provider="openai")
    (tables / "manifest.json").write_text("{broken")
    with pytest.raises(finops.PriceFileError, match=r"manifest\.json"):
        PriceBook.load(tables_dir=tables)
    with pytest.raises(finops.PriceFileError, match="discount"):
        PriceBook.load(overrides={"discounts": {"openai": "150%"}})
