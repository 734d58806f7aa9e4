"""Real openai SDK → finops → DevServer, with base_url naming real provider hosts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx2
import openai
import pytest

import finops
from finops.devserver import DevServer
from finops.pricing import PriceBook
from finops.usage import Usage
from finops_testing import rows


def _client(base_url: str, http: httpx2.Client) -> openai.OpenAI:
    return openai.OpenAI(api_key="k", base_url=base_url, http_client=http, max_retries=0)


def _usage(row: dict[str, object]) -> Usage:
    return Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"])  # type: ignore[arg-type]


def _expected(row: dict[str, object], provider: str) -> Decimal:
    return (
        PriceBook.default()
        .price(
            provider=provider,
            model=str(row["served_model"]),
            usage=_usage(row),
            at=row["ts_start"],  # type: ignore[arg-type]
        )
        .total
    )


def test_cerebras_host_priced_from_cerebras_table(
    ledger_path: Path, redirect: httpx2.Client
) -> None:
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(_client("https://api.cerebras.ai/v1", redirect))
        client.chat.completions.create(
            model="gpt-oss-120b", messages=[{"role": "user", "content": "hello there"}]
        )
        stream = client.chat.completions.create(
            model="gpt-oss-120b", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert [c for c in stream if not c.choices] == []  # injected usage chunk stripped
        got = rows(fo)
    assert len(got) == 2
    for row in got:
        assert row["provider"] == "cerebras" and row["pricing_status"] == "priced"
        assert row["cost_total"] == _expected(row, "cerebras") != _expected(row, "openai")


def test_devserver_mapped_as_a_provider(ledger_path: Path, devserver: DevServer) -> None:
    """A local host mapped by the user: FinOps(providers={"127.0.0.1:PORT": "groq"})."""
    with finops.FinOps(ledger=ledger_path, providers={f"127.0.0.1:{devserver.port}": "groq"}) as fo:
        client = fo.wrap(openai.OpenAI(api_key="k", base_url=devserver.openai_base_url))
        client.chat.completions.create(
            model="llama-3.1-8b-instant", messages=[{"role": "user", "content": "hi"}]
        )
        [row] = rows(fo)
    assert row["provider"] == "groq" and row["pricing_status"] == "priced"
    assert row["cost_total"] == _expected(row, "groq") > 0


async def test_unknown_host_is_named_and_flagged(
    ledger_path: Path, aredirect: httpx2.AsyncClient
) -> None:
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(
            openai.AsyncOpenAI(
                api_key="k", base_url="https://gw.internal/v1", http_client=aredirect
            )
        )
        await client.chat.completions.create(
            model="gpt-oss-120b", messages=[{"role": "user", "content": "hi"}]
        )
        stream = await client.chat.completions.create(
            model="gpt-oss-120b", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for _ in stream:
            pass
        got = rows(fo)
    assert len(got) == 2
    for row in got:
        assert row["provider"] == "gw.internal"
        assert row["pricing_status"] == "host_unknown:openai"
        assert row["cost_total"] == _expected(row, "openai")


def test_unknown_host_mapped_by_the_user(ledger_path: Path, redirect: httpx2.Client) -> None:
    with finops.FinOps(ledger=ledger_path, providers={"gw.internal": "cerebras"}) as fo:
        client = fo.wrap(_client("https://gw.internal/v1", redirect))
        client.chat.completions.create(
            model="gpt-oss-120b", messages=[{"role": "user", "content": "hi"}]
        )
        [row] = rows(fo)
    assert row["provider"] == "cerebras" and row["pricing_status"] == "priced"
    assert row["cost_total"] == _expected(row, "cerebras")


@pytest.mark.parametrize("stream", [False, True])
def test_openrouter_reported_cost_beside_ours(
    ledger_path: Path, redirect: httpx2.Client, devserver: DevServer, stream: bool
) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(_client("https://openrouter.ai/api/v1", redirect))
        ours = (
            PriceBook.default()
            .price(
                provider="openrouter",
                model="openai/gpt-4o-mini",
                usage=Usage(input_tokens=1000, output_tokens=100),
                at=fo.clock(),
            )
            .total
        )
        devserver.next_usage({**usage, "cost": float(ours + Decimal("0.02")), "is_byok": False})
        devserver.next_usage(
            {
                **usage,
                "cost": 0,
                "is_byok": True,
                "cost_details": {"upstream_inference_cost": float(ours)},
            }
        )
        for _ in range(2):
            result = client.chat.completions.create(
                model="openai/gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=stream,
            )
            if stream:
                list(result)  # type: ignore[arg-type]
        fees, byok = rows(fo)
    assert fees["provider"] == byok["provider"] == "openrouter"
    assert fees["cost_total"] == byok["cost_total"] == ours
    assert fees["host_cost"] == ours + Decimal("0.02")
    assert "fees beyond token prices" in str(fees["host_cost_detail"])
    assert byok["host_cost"] == 0
    assert str(byok["host_cost_detail"]).startswith("byok; upstream_inference_cost=")
