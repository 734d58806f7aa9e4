"""Exact key: each answer-changing parameter changes the key, each excluded one does not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from finops.cache.key import request_key

CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "temperature": 0.2,
}
RESPONSES: dict[str, Any] = {
    "model": "gpt-5-mini",
    "input": "What is 2+2?",
    "instructions": "Be brief.",
}
MESSAGES: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "What is 2+2?"}],
}
EMBEDDINGS: dict[str, Any] = {"model": "text-embedding-3-small", "input": ["a", "b"]}

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

# (endpoint, base kwargs, change name, changed kwargs)
CHANGES = [
    ("chat.completions", CHAT, "model", {"model": "gpt-4o"}),
    (
        "chat.completions",
        CHAT,
        "system message",
        {"messages": [{"role": "system", "content": "Be long."}, CHAT["messages"][1]]},
    ),
    (
        "chat.completions",
        CHAT,
        "earlier turn",
        {
            "messages": [
                CHAT["messages"][0],
                {"role": "assistant", "content": "hi"},
                CHAT["messages"][1],
            ]
        },
    ),
    (
        "chat.completions",
        CHAT,
        "last message",
        {"messages": [CHAT["messages"][0], {"role": "user", "content": "What is 2+3?"}]},
    ),
    ("chat.completions", CHAT, "tools", {"tools": [TOOL]}),
    ("chat.completions", CHAT, "tool_choice", {"tool_choice": "required"}),
    ("chat.completions", CHAT, "response_format", {"response_format": {"type": "json_object"}}),
    ("chat.completions", CHAT, "temperature", {"temperature": 0.3}),
    ("chat.completions", CHAT, "top_p", {"top_p": 0.5}),
    ("chat.completions", CHAT, "max_tokens", {"max_tokens": 5}),
    ("chat.completions", CHAT, "max_completion_tokens", {"max_completion_tokens": 5}),
    ("chat.completions", CHAT, "seed", {"seed": 7}),
    ("chat.completions", CHAT, "n", {"n": 2}),
    ("chat.completions", CHAT, "stop", {"stop": ["\n"]}),
    ("chat.completions", CHAT, "presence_penalty", {"presence_penalty": 1.0}),
    ("chat.completions", CHAT, "logprobs", {"logprobs": True}),
    ("chat.completions", CHAT, "reasoning_effort", {"reasoning_effort": "low"}),
    ("chat.completions", CHAT, "openai-beta header", {"extra_headers": {"OpenAI-Beta": "x"}}),
    ("chat.completions", CHAT, "extra_body param", {"extra_body": {"top_k": 3}}),
    ("responses", RESPONSES, "model", {"model": "gpt-5"}),
    ("responses", RESPONSES, "instructions", {"instructions": "Be long."}),
    ("responses", RESPONSES, "input", {"input": "What is 2+3?"}),
    ("responses", RESPONSES, "reasoning", {"reasoning": {"effort": "high"}}),
    ("responses", RESPONSES, "text format", {"text": {"format": {"type": "json_object"}}}),
    ("responses", RESPONSES, "tools", {"tools": [{"type": "web_search"}]}),
    ("responses", RESPONSES, "previous_response_id", {"previous_response_id": "resp_1"}),
    ("responses", RESPONSES, "max_output_tokens", {"max_output_tokens": 9}),
    ("messages", MESSAGES, "model", {"model": "claude-haiku-4-5"}),
    ("messages", MESSAGES, "system", {"system": "Be long."}),
    ("messages", MESSAGES, "messages", {"messages": [{"role": "user", "content": "What is 2+3?"}]}),
    ("messages", MESSAGES, "max_tokens", {"max_tokens": 101}),
    ("messages", MESSAGES, "thinking", {"thinking": {"type": "enabled", "budget_tokens": 1024}}),
    ("messages", MESSAGES, "tools", {"tools": [{"name": "f", "input_schema": {"type": "object"}}]}),
    ("messages", MESSAGES, "tool_choice", {"tool_choice": {"type": "any"}}),
    ("messages", MESSAGES, "temperature", {"temperature": 0.0}),
    ("messages", MESSAGES, "top_k", {"top_k": 5}),
    ("messages", MESSAGES, "stop_sequences", {"stop_sequences": ["x"]}),
    ("messages", MESSAGES, "betas", {"betas": ["context-1m-2025-08-07"]}),
    ("messages", MESSAGES, "anthropic-beta header", {"extra_headers": {"anthropic-beta": "x"}}),
    ("embeddings", EMBEDDINGS, "input", {"input": ["a", "c"]}),
    ("embeddings", EMBEDDINGS, "dimensions", {"dimensions": 256}),
    ("embeddings", EMBEDDINGS, "encoding_format", {"encoding_format": "base64"}),
]

# (endpoint, base kwargs, name, kwargs that must give the same key)
SAME = [
    ("chat.completions", CHAT, "stream", {"stream": True}),
    (
        "chat.completions",
        CHAT,
        "stream_options",
        {"stream": True, "stream_options": {"include_usage": True}},
    ),
    ("chat.completions", CHAT, "user", {"user": "u-123"}),
    ("chat.completions", CHAT, "metadata", {"metadata": {"run": "7"}}),
    ("chat.completions", CHAT, "store", {"store": True}),
    ("chat.completions", CHAT, "timeout", {"timeout": 3.0}),
    ("chat.completions", CHAT, "other headers", {"extra_headers": {"x-trace": "1"}}),
    (
        "chat.completions",
        CHAT,
        "finops options",
        {"finops_cache": "refresh", "finops_tags": {"a": "b"}},
    ),
    (
        "chat.completions",
        CHAT,
        "text block list",
        {
            "messages": [
                CHAT["messages"][0],
                {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
            ]
        },
    ),
    ("responses", RESPONSES, "stream", {"stream": True}),
    ("responses", RESPONSES, "metadata", {"metadata": {"a": "b"}}),
    ("responses", RESPONSES, "user", {"user": "x"}),
    ("messages", MESSAGES, "stream", {"stream": True}),
    ("messages", MESSAGES, "metadata", {"metadata": {"user_id": "u"}}),
    (
        "messages",
        MESSAGES,
        "cache_control in system",
        {"system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
    ),
    (
        "messages",
        MESSAGES,
        "cache_control in message",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "What is 2+2?",
                            "cache_control": {"type": "ephemeral", "ttl": "1h"},
                        }
                    ],
                }
            ]
        },
    ),
    ("embeddings", EMBEDDINGS, "user", {"user": "x"}),
]


def _key(endpoint: str, kwargs: dict[str, Any], tenant: str = "") -> str:
    wire = "anthropic" if endpoint == "messages" else "openai"
    return request_key(wire=wire, endpoint=endpoint, kwargs=kwargs, tenant=tenant).exact


@pytest.mark.parametrize(
    ("endpoint", "base", "name", "change"), CHANGES, ids=[f"{c[0]}:{c[2]}" for c in CHANGES]
)
def test_answer_changing_parameter_changes_key(
    endpoint: str, base: dict[str, Any], name: str, change: dict[str, Any]
) -> None:
    assert _key(endpoint, base) != _key(endpoint, {**base, **change})


@pytest.mark.parametrize(
    ("endpoint", "base", "name", "change"), SAME, ids=[f"{c[0]}:{c[2]}" for c in SAME]
)
def test_excluded_parameter_keeps_key(
    endpoint: str, base: dict[str, Any], name: str, change: dict[str, Any]
) -> None:
    assert _key(endpoint, base) == _key(endpoint, {**base, **change})


def test_key_order_and_whitespace_do_not_matter() -> None:
    reordered = dict(reversed(list(copy.deepcopy(CHAT).items())))
    reordered["messages"] = [dict(reversed(list(m.items()))) for m in reordered["messages"]]
    assert _key("chat.completions", CHAT) == _key("chat.completions", reordered)
    tool_a = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                    },
                },
            }
        ]
    }
    tool_b = {
        "tools": [
            {
                "function": {
                    "parameters": {
                        "properties": {"b": {"type": "integer"}, "a": {"type": "string"}},
                        "type": "object",
                    },
                    "name": "f",
                },
                "type": "function",
            }
        ]
    }
    assert _key("chat.completions", {**CHAT, **tool_a}) == _key(
        "chat.completions", {**CHAT, **tool_b}
    )


def test_endpoint_and_tenant_are_in_the_key() -> None:
    assert _key("chat.completions", CHAT, "team-a") != _key("chat.completions", CHAT, "team-b")
    assert _key("chat.completions", CHAT, "team-a").startswith("team-a:")
    assert _key("chat.completions", CHAT) != _key("messages", CHAT)


def test_pydantic_response_format_is_keyed_by_schema() -> None:
    from pydantic import BaseModel

    class A(BaseModel):
        x: int

    class B(BaseModel):
        x: str

    assert _key("chat.completions", {**CHAT, "response_format": A}) != _key(
        "chat.completions", {**CHAT, "response_format": B}
    )


def test_context_key_ignores_only_the_last_user_text() -> None:
    k1 = request_key(wire="openai", endpoint="chat.completions", kwargs=CHAT)
    other = {
        **CHAT,
        "messages": [CHAT["messages"][0], {"role": "user", "content": "How much is two plus two?"}],
    }
    k2 = request_key(wire="openai", endpoint="chat.completions", kwargs=other)
    assert k1.exact != k2.exact and k1.context == k2.context
    assert k2.text == "How much is two plus two?"
    k3 = request_key(wire="openai", endpoint="chat.completions", kwargs={**other, "temperature": 1})
    assert k3.context != k2.context
    k4 = request_key(wire="openai", endpoint="chat.completions", kwargs=other, tenant="t2")
    assert k4.context != k2.context
    r = request_key(wire="openai", endpoint="responses", kwargs=RESPONSES)
    assert r.text == "What is 2+2?" and r.context is not None
    e = request_key(wire="openai", endpoint="embeddings", kwargs=EMBEDDINGS)
    assert e.context is None and e.text is None
