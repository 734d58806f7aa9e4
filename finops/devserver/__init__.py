"""A local provider server that speaks the OpenAI and Anthropic wire formats (127.0.0.1 only).

The demo, the tests and the benchmarks point the *real* SDKs at it with ``base_url=``:

    with DevServer() as server:
        client = openai.OpenAI(api_key="x", base_url=server.openai_base_url)
        claude = anthropic.Anthropic(api_key="x", base_url=server.anthropic_base_url)

Endpoints: ``POST /v1/chat/completions`` (JSON, SSE with ``stream_options.include_usage``),
``POST /v1/responses`` (JSON, SSE event sequence ending in ``response.completed``),
``POST /v1/embeddings`` (float or base64), ``POST /v1/messages`` (JSON, SSE with
``message_start`` / ``message_delta`` usage; thinking blocks when ``thinking`` is enabled).

Behaviour, all deterministic (the same request gets the same reply, ids included):

* input tokens ≈ UTF-8 bytes / 4 per text part plus per-message overhead; output tokens = words
  of the reply (``max_tokens`` caps it, at most 40);
* reasoning models (``o1``/``o3``/``o4``/``gpt-5``...) report ``reasoning_tokens`` inside
  ``completion_tokens``; Anthropic ``thinking`` adds a thinking block counted in ``output_tokens``;
* prompt caching: OpenAI reports ``cached_tokens`` (included in ``prompt_tokens``, multiples of
  128) when a prompt of ≥ 1024 tokens is seen again; Anthropic reports
  ``cache_creation_input_tokens`` (5m or 1h, from ``cache_control.ttl``) the first time a prefix
  ending in a ``cache_control`` block is seen and ``cache_read_input_tokens`` afterwards — both
  *additive* to ``input_tokens``, as in the real API;
* about one stream in three carries updated input counts in ``message_delta``, as real ones do;
* model ids are echoed as dated snapshots (``gpt-4o`` → ``gpt-4o-2024-08-06``).

Faults, for the next N requests (``server.inject(Fault.status(429, retry_after=0.01), times=1)``)
or per request with the header ``x-finops-fault: 429`` / ``500`` / ``garbage`` / ...:
``Fault.status(code, retry_after=None)``, ``Fault.slow(seconds)``, ``Fault.garbage()``
(200 with a non-JSON body), ``Fault.truncated_sse(after=2)`` (the stream ends cleanly before
its final events), ``Fault.drop_stream(after=2)`` (the connection is cut mid-stream).
``server.next_usage({...})`` makes the next reply carry exactly that provider-format usage.
``server.requests`` logs every request (method, path, headers without credentials, body).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DevServer", "Fault", "RecordedRequest", "serve_forever"]

_SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o3-mini": "o3-mini-2025-01-31",
    "o3": "o3-2025-04-16",
    "o4-mini": "o4-mini-2025-04-16",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-6": "claude-sonnet-4-6",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
}
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_WORDS = [
    "ledger",
    "cost",
    "token",
    "budget",
    "cache",
    "price",
    "model",
    "stream",
    "call",
    "spend",
    "team",
    "audit",
    "margin",
    "invoice",
    "quota",
    "meter",
    "tally",
    "route",
    "cheap",
    "exact",
    "limit",
    "settle",
    "reserve",
    "window",
    "report",
    "trend",
    "saving",
]
_CREDENTIAL_HEADERS = {"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"}
_CREATED = 1_700_000_000


@dataclass(frozen=True)
class Fault:
    """A fault the server plays instead of (or in the middle of) a normal reply."""

    kind: str  # status | slow | garbage | truncated_sse | drop_stream
    status_code: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    after: int = 2

    @classmethod
    def status(cls, code: int, *, retry_after: float | None = None) -> Fault:
        """An HTTP error reply (429 with ``retry-after`` seconds, 500, 529...)."""
        return cls("status", status_code=code, retry_after=retry_after)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Wait before replying normally."""
        return cls("slow", delay=seconds)

    @classmethod
    def garbage(cls) -> Fault:
        """A 200 reply whose body is not JSON."""
        return cls("garbage")

    @classmethod
    def truncated_sse(cls, after: int = 2) -> Fault:
        """A stream that ends cleanly after ``after`` events, without its final events."""
        return cls("truncated_sse", after=after)

    @classmethod
    def drop_stream(cls, after: int = 2) -> Fault:
        """A stream whose connection is cut after ``after`` events."""
        return cls("drop_stream", after=after)

    @classmethod
    def from_header(cls, value: str) -> Fault:
        """Parse ``x-finops-fault``: a status code, or a fault kind name."""
        value = value.strip()
        if value.isdigit():
            return cls.status(int(value), retry_after=0.01 if value == "429" else None)
        if value.startswith("slow"):
            return cls.slow(float(value.partition(":")[2] or 0.2))
        return cls(value)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received (credentials removed)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    time: float


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    usages: deque[dict[str, Any]] = field(default_factory=deque)
    seen_prompts: set[str] = field(default_factory=set)
    log_requests: bool = True


# -- token arithmetic ------------------------------------------------------------------------


def _tokens(text: str) -> int:
    return (len(text.encode()) + 3) // 4 if text else 0


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return _tokens(content)
    total = 0
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    total += _tokens(part["text"])
                elif part.get("type") in ("image_url", "image", "input_image"):
                    total += 85
                elif part.get("type") in ("tool_result", "tool_use", "function_call_output"):
                    total += _tokens(json.dumps(part, sort_keys=True))
            elif isinstance(part, str):
                total += _tokens(part)
    elif content is not None:
        total += _tokens(json.dumps(content, sort_keys=True, default=str))
    return total


def _digest(body: Mapping[str, Any]) -> str:
    stable = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()


def _reply_words(digest: str, limit: int | None) -> list[str]:
    n = 8 + int(digest[:2], 16) % 17
    if limit is not None:
        n = max(1, min(n, int(limit)))
    return [_WORDS[int(digest[i % 60 : i % 60 + 2], 16) % len(_WORDS)] for i in range(n)]


def _snapshot(model: str) -> str:
    return _SNAPSHOTS.get(model, model)


def _reasoning(model: str, digest: str) -> int:
    return 64 + int(digest[2:4], 16) if model.startswith(_REASONING_PREFIXES) else 0


# -- the handler -----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK add ~40 ms to every reply.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep the server quiet
        return

    # plumbing
    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, events: list[tuple[str | None, Any]], fault: Fault | None) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i, (name, data) in enumerate(events):
            if (
                fault is not None
                and fault.kind in ("truncated_sse", "drop_stream")
                and i >= fault.after
            ):
                if fault.kind == "drop_stream":
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                break
            payload = data if isinstance(data, str) else json.dumps(data)
            text = (f"event: {name}\n" if name else "") + f"data: {payload}\n\n"
            raw = text.encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._send_json(
                400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}}
            )
            return
        state = self.server.state
        fault: Fault | None = None
        usage_override: dict[str, Any] | None = None
        with state.lock:
            if state.log_requests:
                headers = {
                    k.lower(): v
                    for k, v in self.headers.items()
                    if k.lower() not in _CREDENTIAL_HEADERS
                }
                state.requests.append(
                    RecordedRequest("POST", self.path, headers, body, time.time())
                )
            if state.faults:
                fault = state.faults.popleft()
            if state.usages:
                usage_override = state.usages.popleft()
        header_fault = self.headers.get("x-finops-fault")
        if header_fault:
            fault = Fault.from_header(header_fault)
        path = self.path.split("?")[0].rstrip("/")
        anthropic = path.endswith("/messages")
        if fault is not None:
            if fault.kind == "slow":
                time.sleep(fault.delay)
                fault = None
            elif fault.kind == "status":
                self._send_error(fault, anthropic)
                return
            elif fault.kind == "garbage":
                data = b"<html><body>502 Bad Gateway (upstream returned garbage)</body></html>"
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
        if path.endswith("/chat/completions"):
            self._chat(body, fault, usage_override)
        elif path.endswith("/responses"):
            self._responses(body, fault, usage_override)
        elif path.endswith("/embeddings"):
            self._embeddings(body, usage_override)
        elif anthropic:
            self._messages(body, fault, usage_override)
        else:
            self._send_json(
                404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
            )

    def _send_error(self, fault: Fault, anthropic: bool) -> None:
        code = fault.status_code
        kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}.get(
            code, "api_error"
        )
        message = f"injected fault: HTTP {code}"
        payload: Any = (
            {"type": "error", "error": {"type": kind, "message": message}}
            if anthropic
            else {"error": {"message": message, "type": kind, "code": None}}
        )
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
            headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
        self._send_json(code, payload, headers)

    # OpenAI chat
    def _prompt_cache(self, key: str, prompt_tokens: int) -> int:
        if prompt_tokens < 1024:
            return 0
        state = self.server.state
        with state.lock:
            seen = key in state.seen_prompts
            state.seen_prompts.add(key)
        return (prompt_tokens // 128) * 128 if seen else 0

    def _chat(
        self, body: Mapping[str, Any], fault: Fault | None, override: dict[str, Any] | None
    ) -> None:
        model = str(body.get("model", ""))
        digest = _digest(body)
        messages = body.get("messages") or []
        prompt = 3 + sum(
            3 + _content_tokens(m.get("content")) + (1 if m.get("name") else 0) for m in messages
        )
        prompt += sum(_tokens(json.dumps(t, sort_keys=True)) for t in body.get("tools") or [])
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        words = _reply_words(digest, min(int(limit), 40) if limit else None)
        reasoning = _reasoning(model, digest)
        cached = self._prompt_cache(
            "chat:" + json.dumps(messages, sort_keys=True, default=str), prompt
        )
        usage = override or {
            "prompt_tokens": prompt,
            "completion_tokens": len(words) + reasoning,
            "total_tokens": prompt + len(words) + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        base = {
            "id": "chatcmpl-" + digest[:24],
            "created": _CREATED,
            "model": _snapshot(model),
            "system_fingerprint": "fp_" + digest[24:34],
            "service_tier": "default",
        }
        text = " ".join(words)
        if not body.get("stream"):
            self._send_json(
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": text,
                                "refusal": None,
                                "annotations": [],
                            },
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        extra = {"usage": None} if include_usage else {}
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[str | None, Any]] = [
            (
                None,
                {
                    **chunk,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": "", "refusal": None},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                    **extra,
                },
            )
        ]
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            events.append(
                (
                    None,
                    {
                        **chunk,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"content": piece},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ],
                        **extra,
                    },
                )
            )
        events.append(
            (
                None,
                {
                    **chunk,
                    "choices": [
                        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
                    ],
                    **extra,
                },
            )
        )
        if include_usage:
            events.append((None, {**chunk, "choices": [], "usage": usage}))
        events.append((None, "[DONE]"))
        self._send_sse(events, fault)

    # OpenAI responses
    def _responses(
        self, body: Mapping[str, Any], fault: Fault | None, override: dict[str, Any] | None
    ) -> None:
        model = str(body.get("model", ""))
        digest = _digest(body)
        items = body.get("input")
        prompt = _content_tokens(items) if isinstance(items, str) else 0
        if isinstance(items, list):
            for item in items:
                if isinstance(item, Mapping):
                    prompt += 3 + _content_tokens(
                        item.get("content") if "content" in item else item
                    )
        prompt += _tokens(str(body.get("instructions") or "")) + 7
        limit = body.get("max_output_tokens")
        words = _reply_words(digest, min(int(limit), 40) if limit else None)
        reasoning = _reasoning(model, digest)
        cached = self._prompt_cache(
            "resp:" + json.dumps(items, sort_keys=True, default=str), prompt
        )
        usage = override or {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": len(words) + reasoning,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + len(words) + reasoning,
        }
        text = " ".join(words)
        rid, mid = "resp_" + digest[:24], "msg_" + digest[24:48]
        message = {
            "id": mid,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }
        response = {
            "id": rid,
            "object": "response",
            "created_at": _CREATED,
            "status": "completed",
            "model": _snapshot(model),
            "output": [message],
            "usage": usage,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "metadata": {},
            "parallel_tool_calls": True,
            "temperature": 1.0,
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "text": {"format": {"type": "text"}},
            "truncation": "disabled",
            "service_tier": "default",
        }
        if not body.get("stream"):
            self._send_json(200, response)
            return
        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        seq = iter(range(1_000_000))
        events: list[tuple[str | None, Any]] = []

        def ev(kind: str, **payload: Any) -> None:
            events.append((kind, {"type": kind, "sequence_number": next(seq), **payload}))

        ev("response.created", response=pending)
        ev("response.in_progress", response=pending)
        ev(
            "response.output_item.added",
            output_index=0,
            item={**message, "status": "in_progress", "content": []},
        )
        ev(
            "response.content_part.added",
            item_id=mid,
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
        )
        for i, word in enumerate(words):
            ev(
                "response.output_text.delta",
                item_id=mid,
                output_index=0,
                content_index=0,
                delta=word if i == 0 else " " + word,
                logprobs=[],
            )
        ev(
            "response.output_text.done",
            item_id=mid,
            output_index=0,
            content_index=0,
            text=text,
            logprobs=[],
        )
        ev(
            "response.content_part.done",
            item_id=mid,
            output_index=0,
            content_index=0,
            part=message["content"][0],
        )
        ev("response.output_item.done", output_index=0, item=message)
        ev("response.completed", response=response)
        self._send_sse(events, fault)

    # OpenAI embeddings
    def _embeddings(self, body: Mapping[str, Any], override: dict[str, Any] | None) -> None:
        raw_input = body.get("input")
        inputs: list[Any] = (
            raw_input
            if isinstance(raw_input, list) and raw_input and not isinstance(raw_input[0], int)
            else [raw_input]
        )
        tokens = sum(len(x) if isinstance(x, list) else _tokens(str(x)) for x in inputs)
        data = []
        for i, item in enumerate(inputs):
            h = hashlib.sha256(json.dumps(item).encode()).digest()
            vector = [(b - 128) / 128.0 for b in h[:8]]
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": _snapshot(str(body.get("model", ""))),
                "usage": override or {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # Anthropic messages
    def _messages(
        self, body: Mapping[str, Any], fault: Fault | None, override: dict[str, Any] | None
    ) -> None:
        model = str(body.get("model", ""))
        digest = _digest(body)
        total = 0
        cached_prefix = 0
        ttl = "5m"
        parts: list[tuple[int, Any]] = []
        system = body.get("system")
        if isinstance(system, str):
            parts.append((_tokens(system), None))
        elif isinstance(system, list):
            parts.extend((_content_tokens([b]), b.get("cache_control")) for b in system)
        for tool in body.get("tools") or []:
            parts.append((_tokens(json.dumps(tool, sort_keys=True)), tool.get("cache_control")))
        for m in body.get("messages") or []:
            blocks = m.get("content")
            if isinstance(blocks, list):
                parts.extend(
                    (
                        4 + _content_tokens([b]),
                        b.get("cache_control") if isinstance(b, Mapping) else None,
                    )
                    for b in blocks
                )
            else:
                parts.append((4 + _content_tokens(blocks), None))
        for n, control in parts:
            total += n
            if control:
                cached_prefix = total
                ttl = control.get("ttl", "5m") if isinstance(control, Mapping) else "5m"
        total += 3
        read = write = 0
        if cached_prefix >= 1024 or (cached_prefix and cached_prefix == total - 3):
            key = (
                "msg:"
                + model
                + ":"
                + hashlib.sha256(
                    json.dumps(
                        [system, body.get("tools"), body.get("messages")],
                        sort_keys=True,
                        default=str,
                    ).encode()
                ).hexdigest()[:16]
                + str(cached_prefix)
            )
            state = self.server.state
            with state.lock:
                seen = key in state.seen_prompts
                state.seen_prompts.add(key)
            read, write = (cached_prefix, 0) if seen else (0, cached_prefix)
        limit = body.get("max_tokens")
        words = _reply_words(digest, min(int(limit), 40) if limit else None)
        thinking_on = (
            isinstance(body.get("thinking"), Mapping) and body["thinking"].get("type") == "enabled"
        )
        thinking_words = _reply_words(digest[::-1], 30) if thinking_on else []
        output = len(words) + len(thinking_words)
        usage = override or {
            "input_tokens": total - read - write,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": write if ttl != "1h" else 0,
                "ephemeral_1h_input_tokens": write if ttl == "1h" else 0,
            },
            "output_tokens": output,
            "service_tier": "standard",
        }
        text = " ".join(words)
        content: list[dict[str, Any]] = []
        if thinking_on:
            content.append(
                {
                    "type": "thinking",
                    "thinking": " ".join(thinking_words),
                    "signature": "sig_" + digest[:16],
                }
            )
        content.append({"type": "text", "text": text})
        message = {
            "id": "msg_" + digest[:24],
            "type": "message",
            "role": "assistant",
            "model": _snapshot(model),
            "content": content,
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            self._send_json(200, message)
            return
        start_usage = {**usage, "output_tokens": 1}
        updated = int(digest[4:6], 16) % 3 == 0  # ~1/3 of real streams update input counts
        if updated and not override:
            start_usage["input_tokens"] = max(0, usage["input_tokens"] - 2)
        events: list[tuple[str | None, Any]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        **message,
                        "content": [],
                        "stop_reason": None,
                        "usage": start_usage,
                    },
                },
            ),
            ("ping", {"type": "ping"}),
        ]
        for index, block in enumerate(content):
            if block["type"] == "thinking":
                events.append(
                    (
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                        },
                    )
                )
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "thinking_delta", "thinking": block["thinking"]},
                        },
                    )
                )
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "signature_delta", "signature": block["signature"]},
                        },
                    )
                )
            else:
                events.append(
                    (
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "text", "text": ""},
                        },
                    )
                )
                for i, word in enumerate(words):
                    events.append(
                        (
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {
                                    "type": "text_delta",
                                    "text": word if i == 0 else " " + word,
                                },
                            },
                        )
                    )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        delta_usage: dict[str, Any] = {"output_tokens": output}
        if updated or override:
            delta_usage.update(
                {
                    k: usage[k]
                    for k in (
                        "input_tokens",
                        "cache_creation_input_tokens",
                        "cache_read_input_tokens",
                    )
                    if k in usage
                }
            )
            for extra in ("server_tool_use", "iterations", "output_tokens_details"):
                if extra in usage:
                    delta_usage[extra] = usage[extra]
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": delta_usage,
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        self._send_sse(events, fault)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        self.state = state
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-reply (cancelled streams) are normal here: stay quiet."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class DevServer:
    """The local provider server; start it with ``with DevServer() as server:`` or ``start()``."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, log_requests: bool = True
    ) -> None:
        self._state = _State(log_requests=log_requests)
        self._server = _Server((host, port), self._state)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for ``anthropic.Anthropic``."""
        return self.url

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received so far (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def inject(self, fault: Fault, *, times: int = 1) -> None:
        """Play ``fault`` for the next ``times`` requests."""
        with self._state.lock:
            self._state.faults.extend([fault] * times)

    def next_usage(self, usage: Mapping[str, Any]) -> None:
        """Make the next reply carry exactly this provider-format ``usage`` object."""
        with self._state.lock:
            self._state.usages.append(dict(usage))

    def reset(self) -> None:
        """Forget requests, pending faults and usages, and the prompt cache."""
        with self._state.lock:
            self._state.requests.clear()
            self._state.faults.clear()
            self._state.usages.clear()
            self._state.seen_prompts.clear()

    def start(self) -> DevServer:
        """Serve in a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="finops-devserver", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(*, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the server in the foreground until interrupted (``finops serve-fake``)."""
    server = DevServer(host=host, port=port, log_requests=False)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()
