"""Azure OpenAI through the real SDK (AzureOpenAI, AsyncAzureOpenAI, v1 endpoints)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import pytest

import finops
from finops.errors import ConfigError
from finops.pricing import PriceBook
from finops.usage import Usage
from finops_testing import rows

ENDPOINT = "https://my-res.openai.azure.com"


def _cost(row: dict[str, object], model: str) -> object:
    usage = Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"])  # type: ignore[arg-type]
    return (
        PriceBook.default()
        .price(
            provider="azure",
            model=model,
            usage=usage,
            at=row["ts_start"],  # type: ignore[arg-type]
        )
        .total
    )


def test_deployment_named_after_its_model_priced_by_the_served_model(
    ledger_path: Path, redirect: httpx2.Client
) -> None:
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(
            openai.AzureOpenAI(
                api_key="k", azure_endpoint=ENDPOINT, api_version="2024-10-21", http_client=redirect
            )
        )
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
        )
        [row] = rows(fo)
    assert row["provider"] == "azure" and row["pricing_status"] == "priced"
    assert row["served_model"] == "gpt-4o-2024-08-06"
    assert row["cost_total"] == _cost(row, "gpt-4o") > 0


def test_deployment_map_prices_a_deployment_name(
    ledger_path: Path, redirect: httpx2.Client, devserver: object
) -> None:
    providers = {
        "my-res.openai.azure.com": {
            "provider": "azure",
            "deployments": {"prod-chat": "gpt-4o-mini"},
        }
    }
    with finops.FinOps(ledger=ledger_path, providers=providers) as fo:  # type: ignore[arg-type]
        client = fo.wrap(
            openai.AzureOpenAI(
                api_key="k",
                azure_endpoint=ENDPOINT,
                azure_deployment="prod-chat",
                api_version="2024-10-21",
                http_client=redirect,
            )
        )
        stream = client.chat.completions.create(
            model="prod-chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        list(stream)
        [row] = rows(fo)
    paths = [r.path for r in devserver.requests]  # type: ignore[attr-defined]
    assert paths[0].startswith("/openai/deployments/prod-chat/chat/completions")
    assert row["provider"] == "azure" and row["pricing_status"] == "priced"
    assert row["cost_total"] == _cost(row, "gpt-4o-mini") > 0


async def test_async_azure_and_v1_endpoint(
    ledger_path: Path, aredirect: httpx2.AsyncClient
) -> None:
    with finops.FinOps(ledger=ledger_path) as fo:
        azure = fo.wrap(
            openai.AsyncAzureOpenAI(
                api_key="k",
                azure_endpoint=ENDPOINT,
                api_version="2024-10-21",
                http_client=aredirect,
            )
        )
        await azure.embeddings.create(model="text-embedding-3-small", input="hello")
        v1 = fo.wrap(
            openai.AsyncOpenAI(
                api_key="k", base_url=ENDPOINT + "/openai/v1/", http_client=aredirect
            )
        )
        await v1.responses.create(model="gpt-4.1-mini", input="hi")
        got = rows(fo)
    assert [r["provider"] for r in got] == ["azure", "azure"]
    assert all(r["pricing_status"] == "priced" and r["cost_total"] > 0 for r in got)


def test_bad_deployment_rule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="deployments"):
        finops.FinOps(ledger=":memory:", providers={"x.openai.azure.com": {"deploy": {}}})  # type: ignore[dict-item]


def test_raise_policy_knows_deployments(ledger_path: Path, redirect: httpx2.Client) -> None:
    providers = {
        "my-res.openai.azure.com": {"provider": "azure", "deployments": {"prod": "gpt-4o"}}
    }
    with finops.FinOps(ledger=ledger_path, providers=providers, unknown_model="raise") as fo:
        client = fo.wrap(
            openai.AzureOpenAI(
                api_key="k", azure_endpoint=ENDPOINT, api_version="2024-10-21", http_client=redirect
            )
        )
        client.chat.completions.create(model="prod", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(finops.UnknownModelError):
            client.chat.completions.create(
                model="unmapped-deployment", messages=[{"role": "user", "content": "hi"}]
            )
        assert len(rows(fo)) == 1


def test_data_zone_and_regional_deployments_cost_ten_percent_more(
    ledger_path: Path, redirect: httpx2.Client
) -> None:
    from decimal import Decimal

    providers = {
        "my-res.openai.azure.com": {
            "provider": "azure",
            "deployment_type": "data_zone",  # every deployment of this resource...
            "deployments": {
                "eu-chat": {"model": "gpt-4o-mini", "type": "regional"},
                "global-chat": {"model": "gpt-4o-mini", "type": "global"},  # ...but this one
            },
        }
    }
    with finops.FinOps(ledger=ledger_path, providers=providers) as fo:  # type: ignore[arg-type]
        client = fo.wrap(
            openai.AzureOpenAI(
                api_key="k", azure_endpoint=ENDPOINT, api_version="2024-10-21", http_client=redirect
            )
        )
        for deployment in ("eu-chat", "global-chat", "gpt-4o-mini"):
            client.chat.completions.create(
                model=deployment, messages=[{"role": "user", "content": "same prompt"}]
            )
        regional, global_, zone = rows(fo)
    assert global_["pricing_status"] == "priced"
    assert global_["cost_total"] == _cost(global_, "gpt-4o-mini") > 0
    assert regional["pricing_status"] == "uplift:regional+10%"
    assert zone["pricing_status"] == "uplift:data_zone+10%"
    for row in (regional, zone):
        assert row["cost_total"] == _cost(row, "gpt-4o-mini") * Decimal("1.10") > 0
    assert regional["cost_input"] + regional["cost_output"] == regional["cost_total"]


def test_bad_deployment_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="data_zone"):
        finops.FinOps(
            ledger=":memory:",
            providers={"r.openai.azure.com": {"provider": "azure", "deployment_type": "zonal"}},
        )
