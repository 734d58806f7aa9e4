"""What an endpoint hands the HTTP layer: a JSON body or a list of encoded SSE events."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# One encoder for the process: json.dumps with non-default options builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode


def dumps(value: Any) -> bytes:
    """Compact JSON bytes, as the providers send them."""
    return _encode(value).encode()


def sse(name: str | None, data: Any) -> bytes:
    """One SSE event: ``event:`` line (Anthropic and Responses), ``data:`` line, blank line."""
    payload = data.encode() if isinstance(data, str) else dumps(data)
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + payload + b"\n\n"


@dataclass
class Reply:
    """A reply to write: ``events`` set means SSE, else ``body`` is sent as JSON."""

    status: int = 200
    body: Any = None
    events: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def openai_error(status: int, message: str, kind: str, code: str | None = None) -> Reply:
    """An error in OpenAI's shape."""
    return Reply(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})


def anthropic_error(status: int, message: str, kind: str) -> Reply:
    """An error in Anthropic's shape."""
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message}})


# A stream repeats one event shape with a different piece of text: encode the shape once and
# splice the pieces in, instead of JSON-encoding every event (the server's share of a stream
# must stay small: it is the baseline finops' added latency is measured against).
MARK = "\x00finops-slot\x00"
_MARK_JSON = dumps(MARK)


def template(name: str | None, data: Any) -> list[bytes]:
    """An SSE event whose values equal to ``MARK`` are slots, split around them."""
    return sse(name, data).split(_MARK_JSON)


def fill(parts: list[bytes], *values: Any) -> bytes:
    """The event with its slots (in order of appearance) replaced by JSON ``values``."""
    out = [parts[0]]
    for value, part in zip(values, parts[1:], strict=True):
        out.append(dumps(value))
        out.append(part)
    return b"".join(out)
