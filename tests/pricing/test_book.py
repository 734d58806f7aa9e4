"""PriceBook behaviour: dates, tiers, variants, resolution, policies, overrides, files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import warnings
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from finops.errors import ConfigError, PriceFileError, UnknownModelError, UnknownModelWarning
from finops.pricing import PriceBook, default_tables_dir
from finops.usage import StepUsage, Usage

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
MTOK_IN = Usage(input_tokens=1_000_000)
MTOK_BOTH = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook.load()


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    """A private copy of the shipped tables (what an installed wheel holds)."""
    dest = tmp_path / "tables"
    shutil.copytree(default_tables_dir(), dest)
    return dest


# -- effective dates, tiers, variants ------------------------------------------------------


def test_price_change_over_time_picks_the_price_in_force(book: PriceBook) -> None:
    # OpenAI cut o3 from $10 to $2 per MTok input on 2025-06-10 (UTC dates)
    before = book.price(
        provider="openai", model="o3", usage=MTOK_IN, at=datetime(2025, 6, 9, 23, 59, tzinfo=UTC)
    )
    after = book.price(
        provider="openai", model="o3", usage=MTOK_IN, at=datetime(2025, 6, 10, tzinfo=UTC)
    )
    assert (before.total, after.total) == (Decimal(10), Decimal(2))
    # a request at 20:00 on June 9 in UTC-5 is already June 10 in UTC
    local = datetime(2025, 6, 9, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert book.price(provider="openai", model="o3", usage=MTOK_IN, at=local).total == 2
    # naive datetimes are UTC
    assert (
        book.price(provider="openai", model="o3", usage=MTOK_IN, at=datetime(2025, 6, 9)).total
        == 10
    )


def test_deepseek_off_peak_window(book: PriceBook) -> None:
    usage = Usage(input_tokens=1_000_000)
    peak = book.price(
        provider="deepseek",
        model="deepseek-chat",
        usage=usage,
        at=datetime(2025, 6, 1, 12, tzinfo=UTC),
    )
    off = book.price(
        provider="deepseek",
        model="deepseek-chat",
        usage=usage,
        at=datetime(2025, 6, 1, 17, tzinfo=UTC),
    )
    assert peak.total != off.total and peak.status == off.status == "priced"


def test_long_context_tier_is_a_cliff_on_total_input(book: PriceBook) -> None:
    def cost(**kw: int) -> Decimal:
        return book.price(
            provider="anthropic", model="claude-sonnet-4-5", usage=Usage(**kw), at=AT
        ).total

    assert cost(input_tokens=200_000) == Decimal("0.6")  # $3 / MTok
    assert cost(input_tokens=200_001) == Decimal("1.200006")  # $6 / MTok on every token
    # cached tokens count toward the threshold, and the tier applies to output too
    priced = book.price(
        provider="anthropic",
        model="claude-sonnet-4-5",
        usage=Usage(input_tokens=150_000, cache_read_tokens=60_000, output_tokens=1_000_000),
        at=AT,
    )
    assert priced.input == Decimal("0.9") and priced.output == Decimal("22.5")
    assert priced.cache_read == Decimal("0.036")  # $0.60 / MTok above 200k


def test_unit_prices_per_token_with_tier(book: PriceBook) -> None:
    small = book.unit_prices(
        provider="anthropic", model="claude-sonnet-4-5", at=AT, input_tokens=1000
    )
    big = book.unit_prices(
        provider="anthropic", model="claude-sonnet-4-5", at=AT, input_tokens=300_000
    )
    assert small is not None and big is not None
    assert small.input == Decimal("0.000003") and big.input == Decimal("0.000006")
    assert small.output == Decimal("0.000015") and small.cache_write_1h == Decimal("0.000006")
    assert book.unit_prices(provider="openai", model="no-such-model", at=AT) is None


def test_batch_flex_priority(book: PriceBook) -> None:
    def cost(model: str, provider: str, at: datetime = AT, **kw: object) -> Decimal:
        return book.price(provider=provider, model=model, usage=MTOK_BOTH, at=at, **kw).total  # type: ignore[arg-type]

    # a variant in the table: Claude Sonnet 4.5 batch
    assert cost("claude-sonnet-4-5", "anthropic", batch=True) * 2 == cost(
        "claude-sonnet-4-5", "anthropic"
    )
    # no batch variant for Opus 4.1: finops' reviewed 50% rule (pricing/overrides.json)
    assert cost("claude-opus-4-1", "anthropic", batch=True) == Decimal(45)
    # before genai-prices' batch variants start (2026-10-14), the 50% rule covers OpenAI too
    early = datetime(2026, 1, 5, tzinfo=UTC)
    assert cost("gpt-4o", "openai", early, batch=True) * 2 == cost("gpt-4o", "openai", early)
    # flex: the table's variant now, the published 50% rule before it existed
    assert cost("gpt-5", "openai", service_tier="flex") * 2 == cost("gpt-5", "openai")
    assert cost("gpt-5", "openai", early, service_tier="flex") * 2 == cost("gpt-5", "openai", early)
    assert cost("gpt-4o", "openai", early, service_tier="flex") == cost("gpt-4o", "openai", early)
    # priority: a per-model price from the table (gpt-4o $4.25 / $17 vs $2.50 / $10)
    assert cost("gpt-4o", "openai", service_tier="priority") == Decimal("21.25")
    assert cost("gpt-4o", "openai", service_tier="default") == Decimal("12.5")


def test_reviewed_audio_correction(book: PriceBook) -> None:
    usage = Usage(
        input_tokens=1_000_000, input_audio_tokens=1_000_000, output_audio_tokens=1_000_000
    )
    cost = book.price(
        provider="openai", model="gpt-4o-audio-preview-2024-12-17", usage=usage, at=AT
    )
    assert cost.input == Decimal("42.5") and cost.output == Decimal(80)


def test_tools_and_cost_components(book: PriceBook) -> None:
    usage = Usage(
        input_tokens=1000,
        cache_read_tokens=2000,
        cache_write_5m_tokens=3000,
        cache_write_1h_tokens=4000,
        output_tokens=500,
        reasoning_tokens=600,
        server_tool_requests={"web_search": 4},
    )
    c = book.price(provider="anthropic", model="claude-sonnet-4-5", usage=usage, at=AT)
    assert c.input == Decimal("0.003")
    assert c.cache_read == Decimal("0.0006")
    assert c.cache_write == Decimal("0.01125") + Decimal("0.024")
    assert c.output == Decimal("0.0165")
    assert c.tools == Decimal("0.04")  # $10 per 1,000 searches
    assert c.total == c.input + c.cache_read + c.cache_write + c.output + c.tools
    assert c.price_version == book.version and c.currency == "USD"


def test_steps_are_priced_at_their_own_model(book: PriceBook) -> None:
    advisor = StepUsage(model="claude-opus-4-1", kind="advisor_message", usage=MTOK_IN)
    compaction = StepUsage(model="", kind="compaction", usage=Usage(input_tokens=55_196))
    usage = Usage(input_tokens=100, output_tokens=10, steps=(advisor, compaction))
    cost = book.price(provider="anthropic", model="claude-sonnet-4-5", usage=usage, at=AT)
    assert cost.steps == Decimal(15) + Decimal("0.165588")  # Opus $15 + Sonnet $3 / MTok
    assert cost.total == cost.input + cost.output + cost.steps
    assert cost.model_ref == "claude-sonnet-4-5"


# -- resolution -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("served", "canonical"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("GPT-4o-Mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-audio-20250828", "gpt-audio"),  # compact date → gpt-audio-2025-08-28
        ("gemini-2.5-pro", "gemini-2.5-pro"),
        ("deepseek-reasoner", "deepseek-reasoner"),
    ],
)
def test_served_model_ids_resolve(book: PriceBook, served: str, canonical: str) -> None:
    ref = book.resolve(model=served)
    assert ref is not None and ref.model_id == canonical


def test_provider_guessing(book: PriceBook) -> None:
    ref = book.resolve(model="deepseek-chat", api_url="https://api.deepseek.com/v1")
    assert ref is not None and ref.provider == "deepseek"
    ref = book.resolve(model="claude-haiku-4-5", api_url="https://api.anthropic.com")
    assert ref is not None and ref.provider == "anthropic"
    # an unknown host falls back to guessing from the model id
    ref = book.resolve(model="gpt-4o", api_url="http://127.0.0.1:8123/v1")
    assert ref is not None and ref.provider == "openai"
    # provider aliases (genai-prices provider_match) and fallback providers
    ref = book.resolve(model="gemini-2.5-flash", provider="google-vertex")
    assert ref is not None and ref.provider == "google"
    ref = book.resolve(model="gpt-4o", provider="azure")
    assert ref is not None and (ref.provider, ref.native) == ("openai", False)
    assert book.resolve(model="gpt-4o", provider="no-such-provider") is None


# -- unknown models ---------------------------------------------------------------------------


def test_unknown_model_policies() -> None:
    book = PriceBook.load()  # a fresh book: warnings are once per model per book
    usage = Usage(input_tokens=10, output_tokens=10)
    with pytest.warns(UnknownModelWarning, match="acme-9000"):
        zero = book.price(provider="openai", model="acme-9000", usage=usage, at=AT)
    assert (zero.status, zero.total, zero.model_ref) == ("unknown_model", 0, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time: no warning
        book.price(provider="openai", model="acme-9000", usage=usage, at=AT)
    fb = book.price(
        provider="openai", model="acme-9000", usage=usage, at=AT, unknown="fallback:gpt-4o"
    )
    assert fb.status == "fallback:gpt-4o" and fb.model_ref == "gpt-4o"
    assert fb.total == book.price(provider="openai", model="gpt-4o", usage=usage, at=AT).total
    with pytest.raises(UnknownModelError, match="acme-9000") as info:
        book.price(provider="openai", model="acme-9000", usage=usage, at=AT, unknown="raise")
    assert info.value.model == "acme-9000" and info.value.provider == "openai"
    with pytest.raises(ConfigError, match="policy"):
        book.price(provider="openai", model="acme-9000", usage=usage, at=AT, unknown="ignore")


# -- overrides -------------------------------------------------------------------------------


def test_discounts_custom_and_gpu_hour_models(book: PriceBook) -> None:
    custom = PriceBook.load(
        overrides={
            "discounts": {"openai": "10%", "anthropic/claude-opus-*": "20%", "anthropic": 5},
            "models": [
                {
                    "provider": "acme",
                    "id": "acme-large",
                    "prices": {"input_mtok": "1", "output_mtok": "2"},
                },
                {
                    "provider": "selfhosted",
                    "id": "llama-70b",
                    "gpu_hour": {
                        "usd_per_gpu_hour": "3.60",
                        "gpus": 2,
                        "input_tokens_per_second": 10000,
                        "output_tokens_per_second": 1000,
                    },
                },
            ],
        }
    )
    base = book.price(provider="openai", model="gpt-4o", usage=MTOK_BOTH, at=AT).total
    assert custom.price(
        provider="openai", model="gpt-4o", usage=MTOK_BOTH, at=AT
    ).total == base * Decimal("0.9")
    opus = custom.price(provider="anthropic", model="claude-opus-4-1", usage=MTOK_IN, at=AT)
    assert opus.total == Decimal(12)  # the model pattern beats the provider-wide 5%
    haiku = custom.price(provider="anthropic", model="claude-haiku-4-5", usage=MTOK_IN, at=AT)
    assert haiku.total == Decimal("0.95")
    assert custom.price(provider=None, model="acme-large", usage=MTOK_BOTH, at=AT).total == 3
    # $7.20 an hour: 1M input tokens take 100 s ($0.20), 1M output tokens 1000 s ($2.00)
    gpu = custom.price(provider="selfhosted", model="llama-70b", usage=MTOK_BOTH, at=AT)
    assert (gpu.input, gpu.output, gpu.status) == (Decimal("0.2"), Decimal(2), "priced")
    assert custom.version.startswith(book.version + "+user.")
    assert PriceBook.load(overrides={"discounts": {"openai": "10%"}}).version != custom.version


def test_overrides_from_toml_and_json_files(tmp_path: Path) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text(
        '[discounts]\nopenai = "25%"\n\n[[models]]\nid = "tiny"\ngpu_hour = '
        '{ usd_per_gpu_hour = "1.80", tokens_per_second = 500 }\n'
    )
    book = PriceBook.load(overrides=toml)
    tiny = book.price(provider=None, model="tiny", usage=MTOK_BOTH, at=AT)
    assert tiny.total == Decimal(2)  # $1.80/h / 3600 s / 500 tok/s = $1 per MTok, each way
    assert book.max_output_tokens(provider="openai", model="gpt-4o") == 16384
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {"models": [{"id": "x1", "prices": {"input_mtok": "4"}, "max_output_tokens": 77}]}
        )
    )
    book = PriceBook.load(overrides=path)
    assert book.price(provider=None, model="x1", usage=MTOK_IN, at=AT).total == 4
    assert book.max_output_tokens(provider=None, model="x1") == 77


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"discounts": {"openai": "150%"}}, r"discounts.*between 0% and 100%"),
        ({"discounts": {"openai": "lots"}}, r"discounts"),
        ({"models": [{"id": "x"}]}, r"models\.0.*needs prices or gpu_hour"),
        (
            {"models": [{"id": "x", "prices": {"input_mtok": 0.1}}]},
            r"models\.0\.prices.*decimal strings",
        ),
        ({"models": [{"id": "x", "prices": {"input_mtk": "1"}}]}, r"unknown price key.*input_mtk"),
        ({"models": [{"id": "x", "gpu_hour": {"usd_per_gpu_hour": "2"}}]}, r"tokens_per_second"),
        ({"discount": {"openai": "5%"}}, r"discount.*Extra inputs"),
    ],
)
def test_bad_overrides_raise_price_file_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(PriceFileError, match=message):
        PriceBook.load(overrides=overrides)


# -- files -----------------------------------------------------------------------------------


def test_malformed_tables_name_the_file_and_field(tables: Path) -> None:
    data = json.loads((tables / "openai.json").read_text())
    data["models"][0]["prices"][0]["prices"]["input_mtok"] = "not-a-number"
    (tables / "openai.json").write_text(json.dumps(data))
    book = PriceBook.load(tables_dir=tables)  # provider tables are validated on first use
    with pytest.raises(
        PriceFileError,
        match=r"openai\.json is malformed at models\.0\.prices\.0\.prices\.input_mtok.*sync_prices",
    ):
        book.resolve(model="gpt-4o", provider="openai")
    # the other providers still work
    assert book.resolve(model="claude-haiku-4-5", provider="anthropic") is not None
    with pytest.raises(PriceFileError, match=r"openai\.json"):
        book.validate_all()


@pytest.mark.parametrize(
    ("file", "corrupt", "message"),
    [
        ("manifest.json", lambda d: "{broken", r"manifest\.json is not valid JSON"),
        (
            "manifest.json",
            lambda d: {**d, "version": ""},
            r"manifest\.json is malformed at version",
        ),
        (
            "units.json",
            lambda d: {"units": {"x": {"per": 0}}},
            r"units\.json is malformed at units\.x",
        ),
        (
            "overrides.json",
            lambda d: {**d, "tier_discounts": [{"when": {}}]},
            r"overrides\.json is malformed at tier_discounts\.0",
        ),
        (
            "anthropic.json",
            lambda d: {**d, "models": [{**d["models"][0], "match": {"like": "x"}}]},
            r"anthropic\.json.*unknown match clause",
        ),
        (
            "anthropic.json",
            lambda d: {
                **d,
                "models": [{**d["models"][0], "prices": [{"prices": {"input_mtok": 3.0}}]}],
            },
            r"anthropic\.json.*decimal strings",
        ),
        (
            "anthropic.json",
            lambda d: {
                **d,
                "models": [{**d["models"][0], "prices": [{"prices": {"inptu_mtok": "3"}}]}],
            },
            r"anthropic\.json.*unknown price key.*inptu_mtok",
        ),
    ],
)
def test_each_malformed_file_raises(tables: Path, file: str, corrupt: object, message: str) -> None:
    path = tables / file
    bad = corrupt(json.loads(path.read_text()))  # type: ignore[operator]
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    with pytest.raises(PriceFileError, match=message):
        PriceBook.load(tables_dir=tables).validate_all()


def test_missing_table_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="missing"):
        PriceBook.load(tables_dir=tmp_path)


def test_a_copied_table_folder_loads_like_the_packaged_one(tables: Path, book: PriceBook) -> None:
    copy = PriceBook.load(tables_dir=tables)
    assert copy.version == book.version
    assert copy.validate_all() == book.validate_all() > 2000


def test_default_is_one_shared_book_loaded_once() -> None:
    PriceBook._default = None
    seen: list[PriceBook] = []
    threads = [threading.Thread(target=lambda: seen.append(PriceBook.default())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in seen}) == 1


def test_max_output_tokens(book: PriceBook) -> None:
    assert book.max_output_tokens(provider="anthropic", model="claude-opus-4-1-20250805") == 32000
    assert book.max_output_tokens(provider="anthropic", model="claude-sonnet-4-5-20250929") == 64000
    assert book.max_output_tokens(provider="openai", model="gpt-4o-mini-2024-07-18") == 16384
    assert book.max_output_tokens(provider=None, model="totally-unknown") is None


def test_runtime_never_imports_genai_prices() -> None:
    code = (
        "import sys, datetime; from finops.pricing import PriceBook; from finops.usage import Usage\n"
        "b = PriceBook.default(); b.validate_all()\n"
        "b.price(provider='openai', model='gpt-4o', usage=Usage(input_tokens=5), "
        "at=datetime.datetime.now(datetime.UTC))\n"
        "print('genai_prices' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
