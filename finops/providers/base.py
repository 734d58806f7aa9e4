"""What every provider adapter produces, and the small helpers they share.

An adapter turns one provider's wire format (a JSON body, or the events of an SSE stream)
into a :class:`Parsed` result holding a normalized :class:`~finops.usage.Usage`. Adapters do
arithmetic checks and *flag* inconsistencies (``Usage.mismatch``); they never "fix" numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from finops.usage import Usage

__all__ = [
    "MAX_TOKENS",
    "Parsed",
    "ProviderAdapter",
    "StreamWatcher",
    "as_int",
    "count",
    "items",
    "load_json",
    "redact",
    "sse_blocks",
    "sse_data",
    "watch_body",
]

#: No component of one response comes near this many tokens (the largest context windows
#: are a few million). A larger count is garbage: flagged and read as 0, never priced.
MAX_TOKENS = 100_000_000

#: Prefix of the ``Usage.mismatch`` note for counts that are not token counts at all.
INVALID = "invalid usage"


@dataclass(slots=True)
class Parsed:
    """The outcome of parsing one response (or one stream)."""

    usage: Usage | None = None
    served_model: str | None = None
    service_tier: str | None = None
    #: Text the model produced (used for estimates of cancelled streams and store_content).
    output_text: str | None = None
    #: For error responses: the provider's error message (never headers).
    error_message: str | None = None
    #: The stream reached its terminal event (for streams only).
    complete: bool = True
    #: The cost the host reports itself (OpenRouter ``usage.cost``), and what it covers.
    host_cost: Decimal | None = None
    host_cost_detail: str | None = None
    notes: list[str] = field(default_factory=list)


class StreamWatcher(Protocol):
    """Watches the events of one SSE response as they pass to the SDK."""

    def on_event(self, block: bytes) -> bool:
        """Look at one complete SSE event block; return False to drop it from the stream."""

    def result(self) -> Parsed:
        """Everything learnt so far (called once the stream ended or was closed)."""


class ProviderAdapter(Protocol):
    """Parses one provider endpoint's responses."""

    def parse_json(self, body: Mapping[str, Any]) -> Parsed:
        """Parse a complete (non-streamed) JSON response body."""

    def stream_watcher(self, *, strip_usage_chunk: bool) -> StreamWatcher:
        """A fresh watcher for one SSE response."""


def as_int(value: object) -> int:
    """A usage count as int: missing / null → 0, bools and junk → 0 (flagged by callers)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


def count(value: object, name: str, notes: list[str]) -> int:
    """A reported token count, checked: missing / null → 0; anything that is not a whole
    number in ``0..MAX_TOKENS`` (a string, a fraction, a negative or absurd number, a bool,
    a list) → 0 *and* a note, so the row is flagged instead of priced silently."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:  # the usual case, checked first
        return value
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        notes.append(f"{INVALID}: {name}={_short(value)} is not a token count (read as 0)")
        return 0
    if number < 0:
        notes.append(f"{INVALID}: {name}={number} is negative (read as 0)")
        return 0
    if number > MAX_TOKENS:
        notes.append(f"{INVALID}: {name}={number} is implausible (> {MAX_TOKENS}; read as 0)")
        return 0
    return number


def require(raw: Mapping[str, Any], names: tuple[str, ...], notes: list[str]) -> None:
    """Flag the core counts a provider always reports when they are missing or null."""
    for name in names:
        if raw.get(name) is None:
            notes.append(f"{INVALID}: {name} is missing (read as 0)")


def items(value: object) -> list[Any]:
    """``value`` if it is a JSON array, else an empty list (never iterate a string or int)."""
    return value if isinstance(value, list) else []


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


#: What an API key, a bearer token or an auth header value looks like in provider text
#: (OpenAI's 401 message echoes the key it was given: "Incorrect API key provided: sk-...").
_SECRET = re.compile(
    r"(?i)(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?:sk|rk|pk)-[A-Za-z0-9._*-]{6,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\b(?:AIza)[0-9A-Za-z_-]{20,}"
    r"|(?i:(?:api[_-]?key|x-api-key|authorization|token|secret)[\"']?\s*[:=]\s*)[\"']?[^\s\"',;]{8,}"
)


def redact(text: str) -> str:
    """``text`` with anything key-like replaced by ``[redacted]`` (error messages from
    providers go on ledger rows and into logs; keys must not)."""
    if not text:
        return text
    return _SECRET.sub("[redacted]", text)


def load_json(raw: bytes) -> Any:
    """``json.loads`` for bytes (UTF-8 per RFC 8259)."""
    return json.loads(raw)


def sse_data(block: bytes) -> bytes | None:
    """The joined ``data:`` payload of one SSE event block, or None if it has none."""
    parts: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    if not parts:
        return None
    return b"\n".join(parts)


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty mapping."""
    if type(value) is dict:  # what json.loads makes: skip the slower ABC check
        return value
    return value if isinstance(value, Mapping) else {}


def watch_body(watcher: Any, body: bytes) -> None:
    """Show ``watcher`` a whole stream's bytes as received (the transport reads a stream
    once, at its end). A watcher with ``read_body(body)`` reads it itself (binary frames, or
    a direct look for the few events that matter); otherwise the SSE events are split
    (``\\r\\n`` and ``\\r`` line ends read as ``\\n``) and shown in order. A last, unterminated
    event (a stream cut mid-event) is shown too: a usage chunk cut before its blank line was
    billed all the same; one that is not valid JSON is ignored.
    """
    read_body = getattr(watcher, "read_body", None)
    if read_body is not None:
        read_body(body)
        return
    for block in sse_blocks(body):
        try:
            watcher.on_event(block)
        except Exception:  # a garbled event is the SDK's business; metering goes on
            continue


def sse_blocks(body: bytes) -> list[bytes]:
    """The event blocks of an SSE body (the last one possibly unterminated), in order."""
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    blocks = body.split(b"\n\n")
    rest = blocks.pop()  # after the last blank line: "" or an unterminated event
    out = [block for block in blocks if block]
    if rest.strip():
        out.append(rest.rstrip(b"\n"))
    return out
