"""Conversions between JSON answers and SSE streams, checked by parsing with the real SDKs."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from finops.cache.replay import assemble, complete_json, synthesize
from finops.devserver import DevServer

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me about caching."}]}
RESP = {"model": "gpt-5-mini", "input": "Tell me about caching.", "reasoning": {"effort": "low"}}
MSG = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 300,
    "messages": [{"role": "user", "content": "Tell me about caching."}],
}


def _raw(server: DevServer, path: str, body: dict[str, Any]) -> bytes:
    base = (
        server.anthropic_base_url
        if path == "/v1/messages"
        else server.openai_base_url.removesuffix("/v1")
    )
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01", "authorization": "Bearer k"}
    r = httpx2.post(base.rstrip("/") + path, json=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.content


def _serving(body: bytes, content_type: str) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=body)

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def _oai(body: bytes, content_type: str) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="k",
        base_url="http://cache.test/v1",
        http_client=_serving(body, content_type),
        max_retries=0,
    )


def _ant(body: bytes, content_type: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="k",
        base_url="http://cache.test",
        http_client=_serving(body, content_type),
        max_retries=0,
    )


SSE = "text/event-stream"
JSON = "application/json"


def test_chat_json_to_stream_and_back(devserver: DevServer) -> None:
    answer = json.loads(_raw(devserver, "/v1/chat/completions", CHAT))
    assert complete_json("chat.completions", answer)
    sse = synthesize("chat.completions", answer)
    chunks = list(_oai(sse, SSE).chat.completions.create(**CHAT, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer["choices"][0]["message"]["content"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(exclude_none=True) == openai.types.CompletionUsage(
        **answer["usage"]
    ).model_dump(exclude_none=True)
    assert assemble("chat.completions", sse) == {
        **answer,
        "choices": [
            {
                **answer["choices"][0],
                "message": {
                    k: v for k, v in answer["choices"][0]["message"].items() if k != "annotations"
                },
            }
        ],
    }
    with _oai(sse, SSE).chat.completions.stream(**CHAT) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == text


def test_chat_stream_to_json(devserver: DevServer) -> None:
    sse = _raw(
        devserver,
        "/v1/chat/completions",
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
    )
    answer = assemble("chat.completions", sse)
    assert answer is not None
    reply = _oai(json.dumps(answer).encode(), JSON).chat.completions.create(**CHAT)
    original = list(_oai(sse, SSE).chat.completions.create(**CHAT, stream=True))
    assert reply.choices[0].message.content == "".join(
        c.choices[0].delta.content or "" for c in original if c.choices
    )
    assert reply.usage == original[-1].usage
    # ... and back again: the synthesized stream carries the same text and usage
    again = list(
        _oai(synthesize("chat.completions", answer), SSE).chat.completions.create(
            **CHAT, stream=True
        )
    )
    assert again[-1].usage == original[-1].usage


def test_chat_tool_calls_round_trip() -> None:
    answer = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "logprobs": None,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {
                                "name": "lookup",
                                "arguments": json.dumps({"city": "Paris", "days": list(range(20))}),
                            },
                        }
                    ],
                },
            },
            {
                "index": 1,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "second choice (n=2)", "refusal": None},
            },
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    back = assemble("chat.completions", synthesize("chat.completions", answer))
    assert back == answer
    with _oai(synthesize("chat.completions", answer), SSE).chat.completions.stream(
        model="gpt-4o", messages=[]
    ) as s:
        final = s.get_final_completion()
    assert (
        final.choices[0].message.tool_calls[0].function.arguments
        == answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    )  # type: ignore[index,union-attr]
    assert final.choices[1].message.content == "second choice (n=2)"


def test_responses_json_to_stream_and_back(devserver: DevServer) -> None:
    answer = json.loads(_raw(devserver, "/v1/responses", RESP))
    assert complete_json("responses", answer)
    sse = synthesize("responses", answer)
    events = list(_oai(sse, SSE).responses.create(**RESP, stream=True))
    assert events[-1].type == "response.completed"
    parsed = _oai(json.dumps(answer).encode(), JSON).responses.create(**RESP)
    assert events[-1].response.usage == parsed.usage
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    with _oai(sse, SSE).responses.stream(**RESP) as stream:
        final = stream.get_final_response()
    assert final.output_text == text == parsed.output_text
    assert assemble("responses", sse) == answer


def test_responses_stream_to_json(devserver: DevServer) -> None:
    sse = _raw(devserver, "/v1/responses", {**RESP, "stream": True})
    answer = assemble("responses", sse)
    assert answer is not None
    reply = _oai(json.dumps(answer).encode(), JSON).responses.create(**RESP)
    original = list(_oai(sse, SSE).responses.create(**RESP, stream=True))
    assert reply.usage == original[-1].response.usage  # type: ignore[union-attr]
    assert reply.output_text == "".join(
        e.delta for e in original if e.type == "response.output_text.delta"
    )


def test_anthropic_json_to_stream_and_back(devserver: DevServer) -> None:
    answer = json.loads(_raw(devserver, "/v1/messages", MSG))
    assert complete_json("messages", answer)
    sse = synthesize("messages", answer)
    with _ant(sse, SSE).messages.stream(**MSG) as stream:
        final = stream.get_final_message()
    original = _ant(json.dumps(answer).encode(), JSON).messages.create(**MSG)
    assert [b.model_dump(exclude={"parsed_output"}) for b in final.content] == [
        b.model_dump() for b in original.content
    ]
    assert final.usage == original.usage
    assert final.stop_reason == original.stop_reason
    assert assemble("messages", sse) == answer


def test_anthropic_stream_to_json(devserver: DevServer) -> None:
    sse = _raw(devserver, "/v1/messages", {**MSG, "stream": True})
    answer = assemble("messages", sse)
    assert answer is not None
    reply = _ant(json.dumps(answer).encode(), JSON).messages.create(**MSG)
    with _ant(sse, SSE).messages.stream(**MSG) as stream:
        original = stream.get_final_message()
    assert [b.model_dump() for b in reply.content] == [
        b.model_dump(exclude={"parsed_output"}) for b in original.content
    ]
    assert reply.usage == original.usage


def test_anthropic_tool_use_and_thinking_round_trip() -> None:
    answer = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {
                "type": "thinking",
                "thinking": "Let me think about the weather in Paris.",
                "signature": "sig==",
            },
            {"type": "text", "text": "Looking it up."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "weather",
                "input": {"city": "Paris", "unit": "C"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 50,
            "output_tokens": 40,
            "cache_read_input_tokens": 7,
            "cache_creation_input_tokens": 0,
        },
    }
    sse = synthesize("messages", answer)
    assert assemble("messages", sse) == answer
    with _ant(sse, SSE).messages.stream(
        model="claude-sonnet-4-5", max_tokens=10, messages=[]
    ) as stream:
        final = stream.get_final_message()
    direct = _ant(json.dumps(answer).encode(), JSON).messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=[]
    )
    assert final.usage == direct.usage and final.stop_reason == direct.stop_reason
    assert [b.model_dump(exclude={"parsed_output"}) for b in final.content] == [
        b.model_dump() for b in direct.content
    ]


@pytest.mark.parametrize("endpoint", ["chat.completions", "responses", "messages"])
def test_incomplete_streams_are_not_answers(endpoint: str) -> None:
    answers = {
        "chat.completions": {
            "id": "c",
            "created": 1,
            "model": "m",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": "hello there, this is a long enough answer",
                    },
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        },
        "responses": {
            "id": "r",
            "object": "response",
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "m",
                    "role": "assistant",
                    "status": "completed",
                    "content": [
                        {
                            "type": "output_text",
                            "text": "hello there, this is a long enough answer",
                            "annotations": [],
                        }
                    ],
                }
            ],
            "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        },
        "messages": {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "c",
            "content": [{"type": "text", "text": "hello there, this is a long enough answer"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        },
    }
    sse = synthesize(endpoint, answers[endpoint])
    assert assemble(endpoint, sse) is not None
    blocks = sse.split(b"\n\n")
    for cut in range(1, len(blocks) - 1):  # every prefix that lacks the final event
        assert assemble(endpoint, b"\n\n".join(blocks[:cut]) + b"\n\n") is None, cut
    if endpoint == "messages":
        error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
        assert (
            assemble(endpoint, sse.replace(b"event: message_stop", error + b"event: message_stop"))
            is None
        )
    assert not complete_json(endpoint, {"error": {"type": "rate_limit"}})
