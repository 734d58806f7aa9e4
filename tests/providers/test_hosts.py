"""The host map: base_url → provider, user rules, and pricing under it (no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

import finops
from finops.errors import ConfigError
from finops.pricing import PriceBook
from finops.providers.hosts import (
    HostMap,
    explain_host_cost,
    host_cost,
    known_price_providers,
    load_host_data,
    price_on_host,
)
from finops.providers.openai import ChatAdapter
from finops.usage import Usage

AT = datetime(2026, 11, 1, tzinfo=UTC)
BOOK = PriceBook.default()
USAGE = Usage(input_tokens=1000, output_tokens=500)


@pytest.mark.parametrize(
    ("url", "label", "provider"),
    [
        ("https://api.openai.com/v1", "openai", "openai"),
        ("https://my-res.openai.azure.com/openai/v1/", "azure", "azure"),
        ("https://my-res.openai.azure.com/openai/", "azure", "azure"),
        ("https://my-proj.services.ai.azure.com/models", "azure", "azure"),
        ("https://my-res.cognitiveservices.azure.com/openai/v1", "azure", "azure"),
        ("https://bedrock-runtime.us-west-2.amazonaws.com/openai/v1", "aws", "aws"),
        ("https://bedrock-runtime.eu-central-1.amazonaws.com", "aws", "aws"),
        ("https://bedrock-mantle.us-east-1.api.aws/v1", "aws", "aws"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "google", "google"),
        ("https://us-central1-aiplatform.googleapis.com/v1/projects/p", "google", "google"),
        ("https://aiplatform.googleapis.com/v1/projects/p", "google", "google"),
        ("https://openrouter.ai/api/v1", "openrouter", "openrouter"),
        ("https://api.groq.com/openai/v1", "groq", "groq"),
        ("https://api.mistral.ai/v1", "mistral", "mistral"),
        ("https://api.deepseek.com", "deepseek", "deepseek"),
        ("https://api.cerebras.ai/v1", "cerebras", "cerebras"),
        ("https://api.z.ai/api/paas/v4/", "zai", "zai"),
        ("https://open.bigmodel.cn/api/paas/v4/", "zhipuai", "zhipuai"),
        ("https://api.together.xyz/v1", "together", "together"),
        ("https://api.fireworks.ai/inference/v1", "fireworks", "fireworks"),
        ("https://api.x.ai/v1", "x-ai", "x-ai"),
        ("https://router.huggingface.co/v1", "huggingface", None),
        ("https://router.huggingface.co/cerebras/v1", "huggingface_cerebras", None),
        ("https://api.sambanova.ai/v1", "sambanova", None),
        ("http://localhost:11434/v1", "ollama", "ollama"),
        ("http://127.0.0.1:5555/v1", "openai", "openai"),
        ("https://gw.internal/v1", "gw.internal", None),
        ("https://evil-api.openai.com.example.net/v1", "evil-api.openai.com.example.net", None),
    ],
)
def test_builtin_routes(url: str, label: str, provider: str | None) -> None:
    route = HostMap().route(url, wire="openai")
    assert (route.label, route.provider) == (label, provider)


def test_every_builtin_provider_has_a_price_table() -> None:
    known = known_price_providers(BOOK)
    data = load_host_data()
    for rule in data.rules:
        if rule.provider is not None:
            assert rule.provider in known, rule
        if rule.family is not None:
            assert any(p.startswith(rule.family) for p in known), rule
    assert data.version


def test_user_rules_win_and_are_checked() -> None:
    hosts = HostMap(
        {
            "gw.internal": "groq",
            "localhost:8000": "self_hosted",
            "*.corp.example": "cerebras",
            "https://proxy.example/deepseek": "deepseek",
            "api.openai.com": "azure",
        },
        known_providers=known_price_providers(BOOK),
    )
    assert hosts.route("https://gw.internal/v1", wire="openai").provider == "groq"
    assert hosts.route("https://gw.internal/v1", wire="openai").rule == "user"
    local = hosts.route("http://localhost:8000/v1", wire="openai")
    assert local.self_hosted and local.label == "self_hosted"
    assert hosts.route("https://a.b.corp.example/v1", wire="openai").provider == "cerebras"
    assert hosts.route("https://proxy.example/deepseek/v1", wire="openai").provider == "deepseek"
    assert hosts.route("https://proxy.example/other/v1", wire="openai").provider is None
    assert hosts.route("https://api.openai.com/v1", wire="openai").provider == "azure"
    with pytest.raises(ConfigError, match="no price table 'grok'"):
        HostMap({"gw": "grok"}, known_providers=known_price_providers(BOOK))
    with pytest.raises(ConfigError, match="non-empty strings"):
        HostMap({"gw": ""})
    with pytest.raises(ConfigError, match="mapping"):
        HostMap(["gw"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        finops.FinOps(ledger=":memory:", providers={"gw": "nope"})


def _price(url: str, model: str, providers: dict[str, str] | None = None, book: PriceBook = BOOK):
    route = HostMap(providers).route(url, wire="openai")
    return price_on_host(
        book,
        route,
        wire_provider=route.label,
        model=model,
        usage=USAGE,
        at=AT,
        service_tier=None,
        unknown="zero_flagged",
    )


def test_a_known_host_prices_from_its_own_table_only() -> None:
    cerebras = _price("https://api.cerebras.ai/v1", "gpt-oss-120b")
    openai = BOOK.price(provider="openai", model="gpt-oss-120b", usage=USAGE, at=AT)
    assert cerebras.status == "priced" and cerebras.provider == "cerebras"
    assert cerebras.total != openai.total
    assert (
        cerebras.total
        == BOOK.price(provider="cerebras", model="gpt-oss-120b", usage=USAGE, at=AT).total
    )
    # A model the host's table does not have is unknown, not priced from another table.
    with pytest.warns(finops.UnknownModelWarning):
        missing = _price("https://api.cerebras.ai/v1", "gpt-4o")
    assert missing.status == "unknown_model" and missing.total == 0
    glm = _price("https://api.z.ai/api/paas/v4/", "glm-4.6")
    assert glm.provider == "zai" and glm.status == "priced"


def test_unknown_host_is_flagged_or_refused_by_policy() -> None:
    guessed = _price("https://gw.internal/v1", "gpt-oss-120b")
    assert guessed.status == "host_unknown:openai" and guessed.total > 0
    zero = _price("https://gw.internal/v1", "gpt-oss-120b", {"*": "none"})
    assert zero.status == "unknown_model" and zero.total == 0
    named = _price("https://gw.internal/v1", "gpt-oss-120b", {"*": "cerebras"})
    assert named.status == "priced" and named.provider == "cerebras"
    mapped = _price("https://gw.internal/v1", "gpt-oss-120b", {"gw.internal": "cerebras"})
    assert mapped.total == named.total


def test_label_only_hosts_price_nothing() -> None:
    cost = _price("https://api.sambanova.ai/v1", "gpt-oss-120b")
    assert cost.status == "unknown_model" and cost.total == 0 and cost.provider == "sambanova"


def test_hugging_face_router_picks_the_table_per_call() -> None:
    by_suffix = _price("https://router.huggingface.co/v1", "openai/gpt-oss-120b:cerebras")
    assert by_suffix.provider == "huggingface_cerebras" and by_suffix.status == "priced"
    by_path = _price("https://router.huggingface.co/cerebras/v1", "openai/gpt-oss-120b")
    assert by_path.total == by_suffix.total
    auto = _price("https://router.huggingface.co/v1", "openai/gpt-oss-120b")
    assert auto.status.startswith("host_unknown:huggingface_") and auto.total > 0


def test_self_hosted_is_free_unless_priced_by_the_user() -> None:
    free = _price("http://localhost:11434/v1", "llama3.2:latest")
    assert free.status == "self_hosted" and free.total == 0
    book = PriceBook.load(
        overrides={
            "models": [
                {
                    "provider": "ollama",
                    "id": "llama3.2:latest",
                    "prices": {"input_mtok": "0.1", "output_mtok": "0.2"},
                }
            ]
        }
    )
    paid = _price("http://localhost:11434/v1", "llama3.2:latest", book=book)
    assert paid.status == "priced" and paid.total == Decimal("0.0002")


def test_host_cost_is_parsed_and_explained() -> None:
    cost, detail = host_cost({"cost": 0.00042, "is_byok": False})
    assert cost == Decimal("0.00042") and detail is None
    assert "matches" in explain_host_cost(cost, detail, Decimal("0.00042"))
    assert "fees" in explain_host_cost(Decimal("0.02042"), None, Decimal("0.00042"))
    byok, note = host_cost(
        {"cost": 0, "is_byok": True, "cost_details": {"upstream_inference_cost": 0.0021}}
    )
    assert byok == 0 and note == "byok; upstream_inference_cost=0.0021"
    assert "your own provider key" in explain_host_cost(byok, note, Decimal("0.0021"))
    assert host_cost({"prompt_tokens": 3}) == (None, None)
    assert host_cost({"cost": "junk"}) == (None, None)


def test_old_groq_usage_in_x_groq() -> None:
    adapter = ChatAdapter()
    usage = {"prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26, "queue_time": 0.01}
    parsed = adapter.parse_json(
        {"model": "llama-3.1-8b-instant", "choices": [], "x_groq": {"id": "r", "usage": usage}}
    )
    assert parsed.usage is not None and parsed.usage.input_tokens == 21
    watcher = adapter.stream_watcher(strip_usage_chunk=False)
    chunks = [
        {"model": "llama-3.1-8b-instant", "choices": [{"delta": {"content": "hi"}}]},
        {
            "model": "llama-3.1-8b-instant",
            "choices": [{"delta": {}, "finish_reason": "stop"}],
            "x_groq": {"id": "r", "usage": usage},
        },
    ]
    for chunk in chunks:
        assert watcher.on_event(b"data: " + json.dumps(chunk).encode())
    assert watcher.on_event(b"data: [DONE]")
    result = watcher.result()
    assert result.complete and result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (21, 5)


def test_azure_stream_opening_with_an_empty_model() -> None:
    watcher = ChatAdapter().stream_watcher(strip_usage_chunk=True)
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    events = [
        {"model": "", "choices": [], "prompt_filter_results": []},
        {"model": "gpt-4o-2024-11-20", "choices": [{"delta": {"content": "hi"}}]},
        {"model": "gpt-4o-2024-11-20", "choices": [], "usage": usage},
    ]
    kept = [watcher.on_event(b"data: " + json.dumps(e).encode()) for e in events]
    watcher.on_event(b"data: [DONE]")
    assert kept == [True, True, False]
    assert watcher.result().served_model == "gpt-4o-2024-11-20"


def test_providers_from_a_config_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "finops.toml"
    path.write_text('[finops]\nledger = "l.duckdb"\n\n[finops.providers]\n"gw.internal" = "groq"\n')
    fo = finops.FinOps.from_config(path)
    try:
        assert fo._hosts.route("https://gw.internal/v1", wire="openai").provider == "groq"
    finally:
        fo.close()
    path.write_text('[finops]\nledger = "l.duckdb"\n\n[finops.providers]\n"gw.internal" = "nope"\n')
    with pytest.raises(ConfigError, match="no price table 'nope'"):
        finops.FinOps.from_config(path)


def test_router_reply_without_the_provider_suffix() -> None:
    route = HostMap().route("https://router.huggingface.co/v1", wire="openai")
    for served in ("openai/gpt-oss-120b", "gpt-oss-120b"):
        cost = price_on_host(
            BOOK,
            route,
            wire_provider=route.label,
            model=served,
            requested="openai/gpt-oss-120b:cerebras",
            usage=USAGE,
            at=AT,
            service_tier=None,
            unknown="zero_flagged",
        )
        assert cost.provider == "huggingface_cerebras" and cost.status == "priced", served


def test_deepseek_and_mistral_cache_fields() -> None:
    from finops.providers.openai import normalize_usage

    deepseek = normalize_usage(
        {
            "prompt_tokens": 100,
            "completion_tokens": 10,
            "total_tokens": 110,
            "prompt_cache_hit_tokens": 64,
            "prompt_cache_miss_tokens": 36,
        }
    )
    assert (deepseek.input_tokens, deepseek.cache_read_tokens) == (36, 64)
    mistral = normalize_usage(
        {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55, "num_cached_tokens": 20}
    )
    assert (mistral.input_tokens, mistral.cache_read_tokens) == (30, 20)


def test_vertex_openai_compatible_ids() -> None:
    url = (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/l/endpoints/openapi"
    )
    cost = _price(url, "google/gemini-2.5-flash")
    assert cost.status == "priced" and cost.provider == "google"
    assert (
        cost.total
        == BOOK.price(provider="google", model="gemini-2.5-flash", usage=USAGE, at=AT).total
    )
