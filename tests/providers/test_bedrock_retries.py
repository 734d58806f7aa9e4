"""Bedrock through boto3: one ledger row per botocore retry attempt (real botocore retries
against the DevServer's AWS-shaped ThrottlingException / 5xx replies and a read timeout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import finops
from finops.devserver import DevServer, Fault, bedrock_client
from finops_testing import rows

pytest.importorskip("boto3")

SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"
MSG = [{"role": "user", "content": [{"text": "What does a ledger do?"}]}]


def _client(server: DevServer, **retries: Any) -> Any:
    from botocore.config import Config

    if not retries:
        return bedrock_client(server.url)  # boto3's default retry mode (legacy)
    return bedrock_client(server.url, config=Config(retries=retries))


def _attempts(got: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(r["attempt"], r["status"], r["http_status"], r["error_type"]) for r in got]


def _throttled(row: dict[str, object]) -> None:
    assert row["error_message"] == "ThrottlingException: injected fault: HTTP 429"
    assert row["cost_total"] is None and row["input_tokens"] is None
    assert row["output_tokens"] is None


def test_devserver_speaks_bedrock_errors(devserver: DevServer) -> None:
    client = _client(devserver, mode="standard", max_attempts=0)
    devserver.inject(Fault.status(429))
    with pytest.raises(client.exceptions.ThrottlingException):
        client.converse(modelId=SONNET, messages=MSG)
    devserver.inject(Fault.status(503))
    with pytest.raises(client.exceptions.ServiceUnavailableException):
        client.converse(modelId=SONNET, messages=MSG)


def test_throttled_attempt_is_its_own_row(ledger_path: Path, devserver: DevServer) -> None:
    devserver.inject(Fault.status(429))
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(_client(devserver))  # boto3's default (legacy) retry mode
        with finops.tags(team="search"):
            reply = client.converse(modelId=SONNET, messages=MSG)
        got = rows(fo)
    assert reply["ResponseMetadata"]["RetryAttempts"] == 1
    assert len(devserver.requests) == 2
    assert _attempts(got) == [(1, "error", 429, "http_429"), (2, "ok", 200, None)]
    assert got[0]["call_id"] == got[1]["call_id"]
    assert all(r["tags"] == {"team": "search"} for r in got)
    _throttled(got[0])
    assert got[1]["cost_total"] > 0  # type: ignore[operator]
    assert got[1]["input_tokens"] == reply["usage"]["inputTokens"]
    assert got[1]["ts_start"] >= got[0]["ts_end"]  # each row times its own attempt


def test_throttled_stream_and_invoke_attempts(ledger_path: Path, devserver: DevServer) -> None:
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(_client(devserver, mode="standard", max_attempts=2))
        devserver.inject(Fault.status(429))
        events = list(client.converse_stream(modelId=SONNET, messages=MSG)["stream"])
        assert "metadata" in events[-1]
        devserver.inject(Fault.status(500))
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 32,
            "messages": [{"role": "user", "content": "hi"}],
        }
        out = client.invoke_model(
            modelId="anthropic.claude-3-5-sonnet-20240620-v1:0", body=json.dumps(body)
        )
        assert json.loads(out["body"].read())["type"] == "message"
        got = rows(fo)
    assert _attempts(got) == [
        (1, "error", 429, "http_429"),
        (2, "ok", 200, None),
        (1, "error", 500, "http_500"),
        (2, "ok", 200, None),
    ]
    assert [r["endpoint"] for r in got] == ["converse", "converse", "invoke_model", "invoke_model"]
    assert [r["stream"] for r in got] == [True, True, False, False]
    _throttled(got[0])
    assert got[2]["error_message"] == "InternalServerException: injected fault: HTTP 500"
    assert got[1]["cost_total"] > 0 and got[3]["cost_total"] > 0  # type: ignore[operator]
    assert len({got[0]["call_id"], got[1]["call_id"]}) == 1
    assert len({got[2]["call_id"], got[3]["call_id"]}) == 1


def test_retries_exhausted_record_every_attempt(ledger_path: Path, devserver: DevServer) -> None:
    devserver.inject(Fault.status(429), times=2)
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(_client(devserver, mode="standard", max_attempts=1))
        with pytest.raises(client.exceptions.ThrottlingException):
            client.converse(modelId=SONNET, messages=MSG)
        client.converse(modelId=SONNET, messages=MSG)  # the client still works, one row
        got = rows(fo)
    assert _attempts(got) == [
        (1, "error", 429, "http_429"),
        (2, "error", 429, "http_429"),
        (1, "ok", 200, None),
    ]
    _throttled(got[0])
    _throttled(got[1])
    assert got[0]["call_id"] == got[1]["call_id"] != got[2]["call_id"]


def test_timed_out_attempt_then_success(ledger_path: Path, devserver: DevServer) -> None:
    from botocore.config import Config

    devserver.inject(Fault.slow(2.0))  # the first reply comes after the client gave up
    raw = bedrock_client(
        devserver.url,
        config=Config(read_timeout=0.5, retries={"mode": "standard", "max_attempts": 1}),
    )
    with finops.FinOps(ledger=ledger_path) as fo:
        client = fo.wrap(raw)
        client.converse(modelId=SONNET, messages=MSG)
        first, second = rows(fo)
    assert (first["attempt"], first["status"], first["http_status"]) == (1, "error", None)
    assert first["error_type"] == "ReadTimeoutError" and first["cost_total"] is None
    assert first["latency_ms"] >= 400  # type: ignore[operator]
    assert (second["attempt"], second["status"]) == (2, "ok")
    assert second["cost_total"] > 0  # type: ignore[operator]
    assert first["call_id"] == second["call_id"]


def test_budget_counts_only_the_billed_attempt(ledger_path: Path, devserver: DevServer) -> None:
    devserver.inject(Fault.status(429))
    budget = finops.Budget(name="day", limit="5", period="day")
    with finops.FinOps(ledger=ledger_path, budgets=[budget]) as fo:
        client = fo.wrap(_client(devserver))
        client.converse(modelId=SONNET, messages=MSG)
        got = rows(fo)
        [status] = fo.budget_status()
    assert status.reserved == 0  # the call is settled once, after its last attempt
    assert status.spent == got[1]["cost_total"] > 0  # type: ignore[operator]
