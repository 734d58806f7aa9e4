"""Raw SDK vs wrapped SDK on the same (possibly hostile) provider bytes.

Real provider bodies are captured once from the local provider server, then mutated and
served through ``httpx2.MockTransport`` to a raw client and to a wrapped one. What the
application sees (the results, or the exception type) must be the same; finops must write
exactly one ledger row per attempt, whatever the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import openai

from finops.devserver import DevServer

OPENAI_KEY = "sk-hostile-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-hostile-0123456789abcdef"
MSG = [{"role": "user", "content": "hello there"}]


@dataclass(frozen=True)
class Case:
    """One endpoint call: how to make it with the SDK and where its body comes from."""

    name: str
    provider: str  # openai | anthropic
    path: str
    body: dict[str, Any]  # the request, also the SDK keyword arguments
    stream: bool


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("chat", "openai", "/chat/completions", {"model": "gpt-4o", "messages": MSG}, False),
        Case(
            "chat_stream",
            "openai",
            "/chat/completions",
            {
                "model": "gpt-4o",
                "messages": MSG,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            True,
        ),
        Case("responses", "openai", "/responses", {"model": "gpt-4o", "input": "hi"}, False),
        Case(
            "responses_stream",
            "openai",
            "/responses",
            {"model": "gpt-4o", "input": "hi", "stream": True},
            True,
        ),
        Case(
            "embeddings",
            "openai",
            "/embeddings",
            {"model": "text-embedding-3-small", "input": "hi"},
            False,
        ),
        Case(
            "messages",
            "anthropic",
            "/v1/messages",
            {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": MSG},
            False,
        ),
        Case(
            "messages_stream",
            "anthropic",
            "/v1/messages",
            {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": MSG, "stream": True},
            True,
        ),
    )
}


@dataclass(frozen=True)
class Body:
    content_type: str
    data: bytes


def capture_bodies(server: DevServer) -> dict[str, Body]:
    """The provider server's real reply bytes for every case."""
    out: dict[str, Body] = {}
    with httpx2.Client(timeout=10) as client:
        for case in CASES.values():
            if case.provider == "openai":
                url = server.openai_base_url + case.path
                headers = {"authorization": f"Bearer {OPENAI_KEY}"}
            else:
                url = server.anthropic_base_url + case.path
                headers = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
            reply = client.post(url, json=case.body, headers=headers)
            assert reply.status_code == 200, reply.text
            out[case.name] = Body(reply.headers["content-type"], reply.content)
    return out


def sdk_client(case: Case, handler: Callable[[httpx2.Request], httpx2.Response]) -> Any:
    """A raw SDK client whose transport is ``handler`` (no retries: one attempt per call)."""
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    if case.provider == "openai":
        return openai.OpenAI(
            api_key=OPENAI_KEY, base_url="http://provider.test/v1", http_client=http, max_retries=0
        )
    return anthropic.Anthropic(
        api_key=ANTHROPIC_KEY, base_url="http://provider.test", http_client=http, max_retries=0
    )


def replying(body: Body, status: int = 200) -> Callable[[httpx2.Request], httpx2.Response]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            status, headers={"content-type": body.content_type}, content=body.data
        )

    return handler


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", warnings=False)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return repr(value)


def outcome(client: Any, case: Case, **extra: Any) -> tuple[str, Any]:
    """What the application sees: ("ok", results) or ("raise", exception type name)."""
    kwargs = {**case.body, **extra}
    try:
        if case.name.startswith("chat"):
            result = client.chat.completions.create(**kwargs)
        elif case.name.startswith("responses"):
            result = client.responses.create(**kwargs)
        elif case.name == "embeddings":
            result = client.embeddings.create(**kwargs)
        else:
            result = client.messages.create(**kwargs)
        if case.stream:
            return "ok", [_dump(event) for event in result]
        return "ok", _dump(result)
    except Exception as exc:
        return "raise", type(exc).__name__


def split_sse(data: bytes) -> list[bytes]:
    return [block for block in data.replace(b"\r\n", b"\n").split(b"\n\n") if block.strip()]


def join_sse(blocks: list[bytes]) -> bytes:
    return b"".join(block + b"\n\n" for block in blocks)


def map_sse_json(data: bytes, fn: Callable[[dict[str, Any]], bool]) -> bytes:
    """Apply ``fn`` to each event's JSON payload (``fn`` returns True if it changed it)."""
    out: list[bytes] = []
    for block in split_sse(data):
        lines = block.split(b"\n")
        new_lines = []
        for line in lines:
            if line.startswith(b"data: ") and line[6:7] == b"{":
                payload = json.loads(line[6:])
                if fn(payload):
                    line = b"data: " + json.dumps(payload).encode()
            new_lines.append(line)
        out.append(b"\n".join(new_lines))
    return join_sse(out)
