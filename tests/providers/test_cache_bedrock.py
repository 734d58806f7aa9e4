"""Exact cache hits for Bedrock through the real boto3 client: a hit is answered from a
``before-send`` handler (botocore's public short-circuit), so the DevServer gets no request,
and botocore parses the stored bytes itself — dicts, ``StreamingBody``, and for
ConverseStream a real ``EventStream`` over AWS's binary event-stream framing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

import finops
from finops.cache.key import request_key
from finops.devserver import DevServer, Fault
from finops.intercept.bedrock import _request_view
from finops_testing import bedrock_client, rows

boto3 = pytest.importorskip("boto3")

SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MSG = [{"role": "user", "content": [{"text": "What does a ledger do?"}]}]


def _client(server: DevServer) -> object:
    return bedrock_client(server)


def _fo(ledger: Path) -> finops.FinOps:
    return finops.FinOps(ledger=ledger, cache=finops.Cache(store="memory"))


def _posts(server: DevServer) -> int:
    return sum(1 for r in server.requests if r.method == "POST")


def _stream_text(response: dict[str, object]) -> tuple[str, dict[str, object]]:
    text, meta = "", {}
    for event in response["stream"]:  # type: ignore[attr-defined]
        if "contentBlockDelta" in event:
            text += event["contentBlockDelta"]["delta"].get("text", "")
        if "metadata" in event:
            meta = event["metadata"]
    return text, meta


def test_converse_hit_json_and_stream(ledger_path: Path, devserver: DevServer) -> None:
    with _fo(ledger_path) as fo:
        client = fo.wrap(_client(devserver))
        config = {"maxTokens": 200, "temperature": 0}
        first = client.converse(modelId=SONNET, messages=MSG, inferenceConfig=config)  # type: ignore[attr-defined]
        # request metadata and cache points do not change the answer
        msg_cp = [{"role": "user", "content": [*MSG[0]["content"], {"cachePoint": {"type": "default"}}]}]
        again = client.converse(  # type: ignore[attr-defined]
            modelId=SONNET, messages=msg_cp, inferenceConfig=config, requestMetadata={"team": "a"}
        )
        assert _posts(devserver) == 1
        assert again["output"] == first["output"] and again["usage"] == first["usage"]
        assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
        stream = client.converse_stream(modelId=SONNET, messages=MSG, inferenceConfig=config)  # type: ignore[attr-defined]
        text, meta = _stream_text(stream)
        assert _posts(devserver) == 1
        assert text == first["output"]["message"]["content"][0]["text"]
        assert meta["usage"] == first["usage"]
        client.converse(modelId=SONNET, messages=MSG, inferenceConfig={"maxTokens": 100})  # type: ignore[attr-defined]
        assert _posts(devserver) == 2
        got = rows(fo)
    assert [r["cache_status"] for r in got] == ["miss", "exact_hit", "exact_hit", "miss"]
    assert [r["status"] for r in got] == ["ok", "cache_hit", "cache_hit", "ok"]
    assert got[1]["cost_total"] == got[2]["cost_total"] == Decimal(0)
    assert got[1]["counterfactual_cost"] == got[2]["counterfactual_cost"] == got[0]["cost_total"] > 0
    assert got[2]["stream"] is True and got[2]["provider"] == "aws"


def test_converse_stream_stored_then_served(ledger_path: Path, devserver: DevServer) -> None:
    with _fo(ledger_path) as fo:
        client = fo.wrap(_client(devserver))
        live_text, live_meta = _stream_text(
            client.converse_stream(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        )
        assert _posts(devserver) == 1
        text, meta = _stream_text(client.converse_stream(modelId=SONNET, messages=MSG))  # type: ignore[attr-defined]
        whole = client.converse(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        assert _posts(devserver) == 1
        assert text == live_text == whole["output"]["message"]["content"][0]["text"]
        assert meta["usage"] == live_meta["usage"] == whole["usage"]
        got = rows(fo)
    assert [r["cache_status"] for r in got] == ["miss", "exact_hit", "exact_hit"]
    assert got[1]["counterfactual_cost"] == got[0]["cost_total"] > 0


def test_stream_cut_early_is_not_stored(ledger_path: Path, devserver: DevServer) -> None:
    with _fo(ledger_path) as fo:
        client = fo.wrap(_client(devserver))
        stream = client.converse_stream(modelId=SONNET, messages=MSG)["stream"]  # type: ignore[attr-defined]
        for _ in zip(range(2), stream, strict=False):
            pass
        stream.close()
        client.converse(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        assert _posts(devserver) == 2
        got = rows(fo)
    assert [r["status"] for r in got] == ["cancelled", "ok"]
    assert got[1]["cache_status"] == "miss"


def test_invoke_model_hit_keeps_body_and_headers(ledger_path: Path, devserver: DevServer) -> None:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": [
        {"role": "user", "content": "Explain a ledger"}]}
    with _fo(ledger_path) as fo:
        client = fo.wrap(_client(devserver))
        first = client.invoke_model(modelId=SONNET, body=json.dumps(body))  # type: ignore[attr-defined]
        first_body = first["body"].read()
        # the same JSON with other spacing and a cache_control hint is the same request
        hinted = {**body, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Explain a ledger", "cache_control": {"type": "ephemeral"}}]}]}
        assert request_key(
            wire="aws", endpoint="invoke_model",
            kwargs=_request_view({"modelId": SONNET, "body": json.dumps(body, indent=2)}),
        ) == request_key(
            wire="aws", endpoint="invoke_model",
            kwargs=_request_view({"modelId": SONNET, "body": json.dumps(body)}),
        )
        assert hinted  # content list vs string is the model's business: a different key
        second = client.invoke_model(modelId=SONNET, body=json.dumps(body, indent=1))  # type: ignore[attr-defined]
        assert _posts(devserver) == 1
        assert second["body"].read() == first_body
        headers = second["ResponseMetadata"]["HTTPHeaders"]
        assert headers["x-amzn-bedrock-input-token-count"] == (
            first["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"]
        )
        got = rows(fo)
    assert [r["cache_status"] for r in got] == ["miss", "exact_hit"]
    assert got[1]["counterfactual_cost"] == got[0]["cost_total"] > 0
    assert got[1]["input_tokens"] == got[0]["input_tokens"]


def test_errors_are_not_stored(ledger_path: Path, devserver: DevServer) -> None:
    from botocore.config import Config

    raw = boto3.client(
        "bedrock-runtime",
        endpoint_url=devserver.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),  # no retry
    )
    with _fo(ledger_path) as fo:
        client = fo.wrap(raw)
        devserver.inject(Fault.status(429))
        with pytest.raises(Exception):  # noqa: B017 - botocore's ThrottlingException
            client.converse(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        client.converse(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        client.converse(modelId=SONNET, messages=MSG)  # type: ignore[attr-defined]
        assert _posts(devserver) == 2
        got = rows(fo)
    assert [r["cache_status"] for r in got] == ["miss", "miss", "exact_hit"]


def _key(**params: object) -> str:
    return request_key(wire="aws", endpoint="converse", kwargs=_request_view(params)).exact


def test_key_rules_for_bedrock() -> None:
    base: dict[str, object] = {"modelId": SONNET, "messages": MSG, "inferenceConfig": {"maxTokens": 10}}
    k = _key(**base)
    for same in (
        {"requestMetadata": {"user": "u1"}},
        {"performanceConfig": {"latency": "optimized"}},
        {"serviceTier": {"type": "priority"}},
        {"system": [{"text": "be brief"}, {"cachePoint": {"type": "default"}}]},
    ):
        if "system" in same:
            assert _key(**{**base, **same}) == _key(**{**base, "system": [{"text": "be brief"}]})
        else:
            assert _key(**{**base, **same}) == k, same
    for change in (
        {"modelId": "us.anthropic.claude-opus-4-1-20250805-v1:0"},
        {"messages": [{"role": "user", "content": [{"text": "other"}]}]},
        {"inferenceConfig": {"maxTokens": 11}},
        {"system": [{"text": "be brief"}]},
        {"toolConfig": {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {}}}}]}},
        {"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}},
        {"guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"}},
        {"outputConfig": {"textFormat": {"type": "json_schema"}}},
    ):
        assert _key(**{**base, **change}) != k, change
    # Converse and ConverseStream share one key (stream hits are served from either)
    assert request_key(
        wire="aws", endpoint="converse", kwargs={**_request_view(base)}
    ) == request_key(wire="aws", endpoint="converse", kwargs=_request_view(dict(base)))


def test_invoke_model_stream_is_not_cached(ledger_path: Path, devserver: DevServer) -> None:
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                       "messages": [{"role": "user", "content": "stream"}]})
    with _fo(ledger_path) as fo:
        client = fo.wrap(_client(devserver))
        for _ in range(2):
            response = client.invoke_model_with_response_stream(modelId=SONNET, body=body)  # type: ignore[attr-defined]
            assert list(response["body"])
        assert _posts(devserver) == 2
        got = rows(fo)
    assert [r["cache_status"] for r in got] == [None, None]
    assert all(r["status"] == "ok" and r["cost_total"] > 0 for r in got)
