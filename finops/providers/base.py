"""What every provider adapter produces, and the small helpers they share.

An adapter turns one provider's wire format (a JSON body, or the events of an SSE stream)
into a :class:`Parsed` result holding a normalized :class:`~finops.usage.Usage`. Adapters do
arithmetic checks and *flag* inconsistencies (``Usage.mismatch``); they never "fix" numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from finops.usage import Usage

__all__ = ["Parsed", "ProviderAdapter", "StreamWatcher", "as_int", "load_json", "sse_data"]


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
    return value if isinstance(value, Mapping) else {}
