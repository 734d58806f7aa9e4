"""Routing within Gemini and within Bedrock, through the real SDKs against the DevServer:
the request that leaves carries the target and the translated parameters, servability is
checked, shadow mode sends the request unchanged, rows carry requested / served model and
the counterfactual cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import finops
from finops.devserver import DevServer
from finops.routing.translate import capabilities, needs_of, translate
from finops.routing.wires import bedrock_target
from finops_testing import rows

genai = pytest.importorskip("google.genai")
types = pytest.importorskip("google.genai.types")
boto3 = pytest.importorskip("boto3")

OPUS = "us.anthropic.claude-opus-4-1-20250805-v1:0"
SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
MSG = [{"role": "user", "content": [{"text": "What is the capital of France?"}]}]
ROUTES = [
    finops.Route(
        source="gemini-2.5-pro",
        targets=[finops.RouteTarget(model="gemini-2.5-flash", thinking="off")],
    ),
    finops.Route(source="gemini-2.5-flash", targets=[finops.RouteTarget(reasoning_effort="low")]),
    finops.Route(
        source="us.anthropic.claude-opus-4-1*",
        targets=[finops.RouteTarget(model=SONNET, thinking="off")],
    ),
    finops.Route(
        source="us.amazon.nova-pro*", targets=[finops.RouteTarget(model="amazon.nova-micro-v1:0")]
    ),
]


def _fo(path: Path, **routing: object) -> finops.FinOps:
    # strong_share=0: every servable request is routed whatever its score
    cfg = finops.Routing(routes=ROUTES, **{"strong_share": 0.0, **routing})  # type: ignore[arg-type]
    return finops.FinOps(ledger=path, routing=cfg)


def _gemini(fo: finops.FinOps, server: DevServer) -> object:
    return fo.wrap(genai.Client(api_key="k", http_options={"base_url": server.url}))  # type: ignore[arg-type]


def _bedrock(fo: finops.FinOps, server: DevServer) -> object:
    return fo.wrap(
        boto3.client(
            "bedrock-runtime",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",
        )
    )


def test_gemini_pro_to_flash_thinking_off(ledger_path: Path, devserver: DevServer) -> None:
    with _fo(ledger_path) as fo:
        models = _gemini(fo, devserver).models  # type: ignore[attr-defined]
        config = types.GenerateContentConfig(
            max_output_tokens=200,
            thinking_config=types.ThinkingConfig(thinking_budget=4096, include_thoughts=True),
        )
        reply = models.generate_content(model="gemini-2.5-pro", contents="Capital of France?", config=config)
        assert isinstance(reply, types.GenerateContentResponse)
        sent = devserver.requests[-1]
        assert sent.path.endswith("/models/gemini-2.5-flash:generateContent")
        thinking = sent.body["generationConfig"]["thinkingConfig"]
        # (the SDK sends thinking_config's own field names; Google accepts both spellings)
        assert thinking == {"thinking_budget": 0, "include_thoughts": True}
        # dict configs and streams are routed the same way
        list(
            models.generate_content_stream(
                model="gemini-2.5-flash",
                contents="Capital of Spain?",
                config={"thinking_config": {"thinking_budget": 20000}},
            )
        )
        sent = devserver.requests[-1]
        assert ":streamGenerateContent" in sent.path and "gemini-2.5-flash" in sent.path
        assert sent.body["generationConfig"]["thinkingConfig"] == {"thinking_budget": 1024}
        got = rows(fo)
    assert [r["requested_model"] for r in got] == ["gemini-2.5-pro", "gemini-2.5-flash"]
    assert str(got[0]["served_model"]).startswith("gemini-2.5-flash")
    assert str(got[0]["route_decision"]).startswith("route:score<threshold->gemini-2.5-flash@nothink")
    assert got[0]["counterfactual_cost"] > got[0]["cost_total"] > 0
    assert got[0]["counterfactual_estimated"] is True


def test_gemini_shadow_and_cannot_serve(ledger_path: Path, devserver: DevServer) -> None:
    with _fo(ledger_path, mode="shadow") as fo:
        models = _gemini(fo, devserver).models  # type: ignore[attr-defined]
        models.generate_content(model="gemini-2.5-pro", contents="Capital of France?")
        assert "gemini-2.5-pro:generateContent" in devserver.requests[-1].path
        got = rows(fo)
    assert str(got[0]["route_decision"]).startswith("shadow_route:")
    assert got[0]["counterfactual_cost"] in (None, got[0]["cost_total"])
    # more output than the target allows: stays on the requested model
    needs = needs_of(
        "generate_content",
        {"model": "gemini-2.5-pro", "contents": "x", "config": {"max_output_tokens": 10**6}},
    )
    assert needs.max_output == 10**6
    with _fo(ledger_path.with_name("b.duckdb")) as fo:
        models = _gemini(fo, devserver).models  # type: ignore[attr-defined]
        models.generate_content(
            model="gemini-2.5-pro", contents="x", config={"max_output_tokens": 100_000}
        )
        got = rows(fo)
    assert "gemini-2.5-pro" in devserver.requests[-1].path  # Flash allows 65,536
    assert got[0]["route_decision"] == "no_route:cannot_serve:max_output"


def test_gemini_needs_and_translation() -> None:
    image = {"inline_data": {"mime_type": "image/png", "data": "AAAA"}}
    audio = types.Part.from_bytes(data=b"RIFF", mime_type="audio/wav")
    kwargs = {
        "model": "gemini-2.5-pro",
        "contents": [{"role": "user", "parts": [{"text": "what is this"}, image]}, audio],
        "config": types.GenerateContentConfig(
            tools=[types.Tool(google_search=types.GoogleSearch())],
            response_schema={"type": "OBJECT"},
            max_output_tokens=10,
        ),
    }
    needs = needs_of("generate_content", kwargs)
    assert needs.images and needs.audio and needs.tools and needs.json_schema
    assert needs.max_output == 10
    # no thinking on 2.0 Flash: the thinking config goes; 2.5 Pro cannot turn it off: minimum
    tr = translate(
        "generate_content",
        {"model": "gemini-2.5-pro", "config": {"thinkingConfig": {"thinkingBudget": 99}}},
        model="gemini-2.0-flash",
        thinking_off=True,
    )
    assert tr.kwargs["config"] == {} and tr.dropped == ("thinking_config",)
    tr = translate("generate_content", {"model": "gemini-2.5-pro"}, model="gemini-2.5-pro",
                   thinking_off=True)
    assert tr.kwargs["config"] == {"thinking_config": {"thinking_budget": 128}}
    tr = translate("generate_content", {"model": "gemini-3-pro-preview"},
                   model="gemini-3-pro-preview", reasoning_effort="low")
    assert tr.kwargs["config"] == {"thinking_config": {"thinking_level": "low"}}
    caps = capabilities("models/gemini-2.5-flash-lite")
    assert caps is not None and caps.provider == "google" and caps.thinking_off


def test_bedrock_opus_to_sonnet_keeps_the_profile(ledger_path: Path, devserver: DevServer) -> None:
    with _fo(ledger_path) as fo:
        client = _bedrock(fo, devserver)
        thinking = {"thinking": {"type": "enabled", "budget_tokens": 2048}}
        reply = client.converse(  # type: ignore[attr-defined]
            modelId=OPUS,
            messages=MSG,
            inferenceConfig={"maxTokens": 300},
            additionalModelRequestFields={**thinking, "top_k": 5},
        )
        assert reply["ResponseMetadata"]["HTTPStatusCode"] == 200
        sent = devserver.requests[-1]
        assert f"/model/us.{SONNET}/converse" in sent.path.replace("%3A", ":")
        assert sent.body["additionalModelRequestFields"] == {"top_k": 5}
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": [
            {"role": "user", "content": "Capital of France?"}], **thinking}
        client.invoke_model(modelId=OPUS, body=json.dumps(body))  # type: ignore[attr-defined]
        sent = devserver.requests[-1]
        assert f"/model/us.{SONNET}/invoke" in sent.path.replace("%3A", ":")
        assert "thinking" not in sent.body and sent.body["max_tokens"] == 100
        got = rows(fo)
    assert [r["requested_model"] for r in got] == [OPUS, OPUS]
    assert [r["served_model"] for r in got] == [f"us.{SONNET}"] * 2
    for row in got:
        assert str(row["route_decision"]).endswith("dropped=thinking")
        assert row["counterfactual_cost"] > row["cost_total"] > 0


def test_bedrock_cannot_serve_and_shadow(ledger_path: Path, devserver: DevServer) -> None:
    image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}
    with _fo(ledger_path) as fo:
        client = _bedrock(fo, devserver)
        client.converse(  # type: ignore[attr-defined]
            modelId="us.amazon.nova-pro-v1:0",
            messages=[{"role": "user", "content": [{"text": "what is this"}, image]}],
        )
        assert "us.amazon.nova-pro-v1" in devserver.requests[-1].path  # micro has no vision
        client.converse(modelId="us.amazon.nova-pro-v1:0", messages=MSG)  # type: ignore[attr-defined]
        assert "us.amazon.nova-micro-v1" in devserver.requests[-1].path
        got = rows(fo)
    assert got[0]["route_decision"] == "no_route:cannot_serve:image_input"
    assert str(got[1]["route_decision"]).startswith("route:")
    with _fo(ledger_path.with_name("s.duckdb"), mode="shadow") as fo:
        client = _bedrock(fo, devserver)
        list(client.converse_stream(modelId=OPUS, messages=MSG)["stream"])  # type: ignore[attr-defined]
        assert OPUS in devserver.requests[-1].path.replace("%3A", ":")
        got = rows(fo)
    assert str(got[0]["route_decision"]).startswith(f"shadow_route:score<threshold->{SONNET}")


def test_bedrock_ids() -> None:
    assert bedrock_target(OPUS, SONNET) == f"us.{SONNET}"
    assert bedrock_target(OPUS, f"eu.{SONNET}") == f"eu.{SONNET}"
    assert bedrock_target("anthropic.claude-opus-4-1-20250805-v1:0", SONNET) == SONNET
    arn = "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-opus-4-1-v1:0"
    assert capabilities(arn) is not None and capabilities(HAIKU) is not None
    caps = capabilities("amazon.nova-micro-v1:0")
    assert caps is not None and not caps.vision
    # a target named by its Anthropic API id is not a Bedrock model: never sent to Bedrock
    from finops.routing.policy import Router

    router = Router(
        config=finops.Routing(
            routes=[finops.Route(source=OPUS, targets=[finops.RouteTarget(model="claude-sonnet-4-5")])],
            strong_share=0.0,
        )
    )
    decision = router.decide(endpoint="converse", kwargs={"model": OPUS, "messages": MSG})
    assert decision is not None and decision.summary() == "no_route:cannot_serve:not_a_bedrock_model_id"
