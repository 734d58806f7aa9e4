"""The real boto3 bedrock-runtime client → finops (botocore event hooks) → DevServer."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

import finops
from finops.devserver import DevServer, Fault
from finops.pricing import PriceBook
from finops.providers.bedrock import converse_usage, header_usage, model_id
from finops.usage import Usage
from finops_testing import bedrock_client, rows

boto3 = pytest.importorskip("boto3")

SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MSG = [{"role": "user", "content": [{"text": "What does a ledger do?"}]}]


def _client(server: DevServer) -> object:
    return bedrock_client(server)


def _cost(row: dict[str, object]) -> Decimal:
    usage = Usage(
        input_tokens=row["input_tokens"],  # type: ignore[arg-type]
        cache_read_tokens=row["cache_read_tokens"],  # type: ignore[arg-type]
        cache_write_5m_tokens=row["cache_write_5m_tokens"],  # type: ignore[arg-type]
        output_tokens=row["output_tokens"],  # type: ignore[arg-type]
    )
    return (
        PriceBook.default()
        .price(
            provider="aws",
            model=str(row["served_model"]),
            usage=usage,
            at=row["ts_start"],  # type: ignore[arg-type]
        )
        .total
    )


def test_usage_shapes() -> None:
    u = converse_usage(
        {
            "inputTokens": 10,
            "outputTokens": 5,
            "cacheReadInputTokens": 100,
            "cacheWriteInputTokens": 20,
            "totalTokens": 135,
        }
    )
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_5m_tokens) == (10, 100, 20)
    assert u.mismatch is None
    assert converse_usage({"inputTokens": 1, "outputTokens": 1, "totalTokens": 5}).mismatch
    h = header_usage(
        {"X-Amzn-Bedrock-Input-Token-Count": "7", "x-amzn-bedrock-output-token-count": "3"}
    )
    assert h is not None and (h.input_tokens, h.output_tokens) == (7, 3)
    assert header_usage({}) is None
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0"
    assert model_id(arn) == "eu.anthropic.claude-3-7-sonnet-20250219-v1:0"


@pytest.mark.parametrize(
    "model",
    [
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        SONNET,
        "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "apac.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us.amazon.nova-pro-v1:0",
    ],
)
def test_inference_profiles_are_priced(model: str) -> None:
    cost = PriceBook.default().price(
        provider="aws", model=model, usage=Usage(input_tokens=1000, output_tokens=100), at=_now()
    )
    assert cost.status == "priced" and cost.total > 0


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 11, 1, tzinfo=UTC)


def test_converse_stream_and_invoke(ledger_path: Path, devserver: DevServer) -> None:
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(_client(devserver))
        reply = client.converse(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        assert reply["output"]["message"]["content"][0]["text"]
        events = list(
            client.converse_stream(modelId=SONNET, messages=MSG)["stream"]  # type: ignore[attr-defined]
        )
        assert "metadata" in events[-1] and "messageStart" in events[0]
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}],
        }
        out = client.invoke_model(  # type: ignore[attr-defined]
            modelId="anthropic.claude-3-5-sonnet-20240620-v1:0", body=json.dumps(body)
        )
        assert json.loads(out["body"].read())["type"] == "message"
        got = rows(fo)
    assert [r["endpoint"] for r in got] == ["converse", "converse", "invoke_model"]
    assert [r["stream"] for r in got] == [False, True, False]
    for row in got:
        assert row["provider"] == "aws" and row["status"] == "ok"
        assert row["pricing_status"] == "priced" and row["cost_total"] == _cost(row) > 0
    assert got[0]["input_tokens"] == got[1]["input_tokens"] > 0


def test_cache_tokens(ledger_path: Path, devserver: DevServer) -> None:
    devserver.next_usage(
        {
            "inputTokens": 12,
            "outputTokens": 8,
            "cacheReadInputTokens": 2048,
            "cacheWriteInputTokens": 1024,
            "totalTokens": 3092,
        }
    )
    with finops.FinOps(ledger=ledger_path) as fo:
        fo.wrap(_client(devserver)).converse(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        [row] = rows(fo)
    assert (row["cache_read_tokens"], row["cache_write_5m_tokens"]) == (2048, 1024)
    assert row["cost_cache_read"] > 0 and row["cost_cache_write"] > 0
    assert row["cost_total"] == _cost(row)


def test_budget_refuses_before_the_network(ledger_path: Path, devserver: DevServer) -> None:
    budget = finops.Budget(name="tiny", limit="0.000001", period="day")
    with finops.FinOps(ledger=ledger_path, budgets=[budget]) as fo:
        client = fo.wrap(_client(devserver))
        with pytest.raises(finops.BudgetExceeded):
            client.converse(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        with pytest.raises(finops.BudgetExceeded):
            client.converse_stream(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        got = rows(fo)
    assert devserver.requests == []
    assert [r["status"] for r in got] == ["blocked", "blocked"]


def test_errors_are_recorded(ledger_path: Path, devserver: DevServer) -> None:
    from botocore.exceptions import ClientError

    devserver.inject(Fault.status(400))
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(_client(devserver))
        with pytest.raises(ClientError):
            client.converse(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        client.converse(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        got = rows(fo)
    assert [r["status"] for r in got] == ["error", "ok"]
    assert got[0]["http_status"] == 400 and got[0]["cost_total"] is None


async def test_anthropic_bedrock_and_vertex_clients(
    ledger_path: Path, devserver: DevServer
) -> None:
    import anthropic

    local = f"127.0.0.1:{devserver.port}"
    with finops.FinOps(ledger=ledger_path, providers={local: "aws"}) as fo:
        bedrock = fo.wrap(
            anthropic.AsyncAnthropicBedrock(
                aws_access_key="a",
                aws_secret_key="b",
                aws_region="us-east-1",
                base_url=devserver.url,
            )
        )
        reply = await bedrock.messages.create(
            model="anthropic.claude-3-5-sonnet-20240620-v1:0",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
        )
        assert reply.usage.output_tokens > 0
        [row] = rows(fo)
    assert row["provider"] == "aws" and row["pricing_status"] == "priced"
    assert row["cost_total"] == _cost(row) > 0


def test_anthropic_vertex_client(ledger_path: Path, devserver: DevServer) -> None:
    import anthropic

    local = f"127.0.0.1:{devserver.port}"
    with finops.FinOps(ledger=ledger_path, providers={local: "google"}) as fo:
        vertex = fo.wrap(
            anthropic.AnthropicVertex(
                region="us-east5", project_id="p", access_token="t", base_url=devserver.url + "/v1"
            )
        )
        vertex.messages.create(
            model="claude-sonnet-4-5@20250929",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
        )
        with vertex.messages.stream(
            model="claude-sonnet-4-5@20250929",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
        ) as stream:
            assert stream.get_final_text()
        got = rows(fo)
    assert [r["stream"] for r in got] == [False, True]
    book = PriceBook.default()
    for row in got:
        usage = Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"])  # type: ignore[arg-type]
        want = book.price(
            provider="google", model="claude-sonnet-4-5@20250929", usage=usage, at=row["ts_start"]
        )  # type: ignore[arg-type]
        assert row["provider"] == "google" and row["cost_total"] == want.total > 0


def test_invoke_model_with_response_stream(ledger_path: Path, devserver: DevServer) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "stream please"}],
    }
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(_client(devserver))
        out = client.invoke_model_with_response_stream(  # type: ignore[attr-defined]
            modelId="anthropic.claude-3-5-sonnet-20240620-v1:0", body=json.dumps(body)
        )
        events = [json.loads(e["chunk"]["bytes"]) for e in out["body"]]
        assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
        [row] = rows(fo)
    assert row["stream"] and row["status"] == "ok" and row["endpoint"] == "invoke_model"
    assert row["input_tokens"] > 0 and row["cost_total"] == _cost(row) > 0


def test_stubbed_invoke_model_usage_from_the_body(ledger_path: Path) -> None:
    import io

    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    raw = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    payload = json.dumps(
        {
            "output": {"message": {"content": [{"text": "hi"}]}},
            "usage": {"inputTokens": 40, "outputTokens": 9},
        }
    ).encode()
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(raw)
        with Stubber(client) as stub:
            stub.add_response(
                "invoke_model",
                {
                    "body": StreamingBody(io.BytesIO(payload), len(payload)),
                    "contentType": "application/json",
                },
            )
            out = client.invoke_model(modelId="us.amazon.nova-lite-v1:0", body=b"{}")  # type: ignore[attr-defined]
            assert out["body"].read() == payload  # the caller still reads the whole body
        [row] = rows(fo)
    assert (row["input_tokens"], row["output_tokens"]) == (40, 9)
    assert row["cost_total"] == _cost(row) > 0


def test_anthropic_bedrock_stream(ledger_path: Path, devserver: DevServer) -> None:
    import anthropic

    local = f"127.0.0.1:{devserver.port}"
    with finops.FinOps(ledger=ledger_path, providers={local: "aws"}) as fo:
        bedrock = fo.wrap(
            anthropic.AnthropicBedrock(
                aws_access_key="a",
                aws_secret_key="b",
                aws_region="us-east-1",
                base_url=devserver.url,
            )
        )
        with bedrock.messages.stream(
            model="anthropic.claude-3-5-sonnet-20240620-v1:0",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
        ) as stream:
            text = stream.get_final_text()
        assert text
        [row] = rows(fo)
    assert row["stream"] and row["status"] == "ok" and row["provider"] == "aws"
    assert row["input_tokens"] > 0 and row["output_tokens"] > 1
    assert row["cost_total"] == _cost(row) > 0


class _Inline(finops.Step):
    """A step with an ``after`` hook: every row is then built on the caller's thread."""

    name = "inline"

    def after(self, call: object, outcome: object) -> None:
        return None


def test_deferred_estimate_ignores_later_changes(tmp_path: Path, devserver: DevServer) -> None:
    """Without a budget the Bedrock/Gemini estimate is counted when the row is built, off
    the caller's thread, from a copy of the request taken at the call: an application that
    changes its ``messages`` (appends, edits a turn) or Gemini ``contents`` right after the
    call returns gets the same ``est_*`` fields as with rows built inline."""
    from google import genai

    def calls(fo: finops.FinOps) -> None:
        bed = fo.wrap(_client(devserver))
        gem = fo.wrap(genai.Client(api_key="k", http_options={"base_url": devserver.url}))
        for i in range(3):  # the first call of a model is metered inline, the others later
            msgs = [{"role": "user", "content": [{"text": f"hello {i}"}]}]
            bed.converse(modelId="us.amazon.nova-lite-v1:0", messages=msgs)  # type: ignore[attr-defined]
            msgs[0]["content"][0]["text"] = "x" * 5000  # type: ignore[index]
            msgs.append({"role": "assistant", "content": [{"text": "y" * 5000}]})
            contents: list[object] = [{"role": "user", "parts": [{"text": f"hi {i}"}]}]
            config = {"max_output_tokens": 32}
            gem.models.generate_content(  # type: ignore[attr-defined]
                model="gemini-2.0-flash", contents=contents, config=config
            )
            contents.append({"role": "user", "parts": [{"text": "z" * 5000}]})
            config["max_output_tokens"] = 9999

    deferred = finops.FinOps(ledger=tmp_path / "deferred.duckdb")
    inline = finops.FinOps(ledger=tmp_path / "inline.duckdb", steps=[_Inline()])
    try:
        assert deferred._meter.deferred is not None and inline._meter.deferred is None
        calls(deferred)
        calls(inline)
        fields = ("endpoint", "est_input_tokens", "est_output_tokens_max", "est_cost_max")
        got = sorted(tuple(r[f] for f in fields) for r in rows(deferred))
        want = sorted(tuple(r[f] for f in fields) for r in rows(inline))
    finally:
        deferred.close()
        inline.close()
    assert len(got) == 6 and got == want
    assert all(r[1] is not None and r[1] < 1000 for r in got)  # the requests as sent
    assert {r[2] for r in got if r[0] == "generate_content"} == {32}
