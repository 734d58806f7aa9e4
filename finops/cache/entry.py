"""One stored answer: a small JSON header line, then the answer bytes exactly as received.

The header says how to serve the bytes (``json`` or ``sse``), when they were stored, and,
for the semantic cache, the context key, the compared text and its vector (float16,
base64), so another process can rebuild its index from the store alone.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from finops.cache import replay
from finops.cache.wires import EVENTSTREAM
from finops.pipeline.call import Served

__all__ = ["Entry"]

_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored answer and what is needed to serve it."""

    id: str
    created: float  # epoch seconds
    endpoint: str
    form: str  # "json" | "sse"
    body: bytes
    tags: dict[str, str]
    context: str | None = None
    text: str | None = None
    vector: Any = None  # np.ndarray (float32) or None
    headers: dict[str, str] | None = None  # response headers replayed with the body

    @classmethod
    def new(cls, **fields: Any) -> Entry:
        """An entry with a fresh id."""
        return cls(id=os.urandom(8).hex(), **fields)

    def encode(self) -> bytes:
        """Header line + body."""
        head: dict[str, Any] = {
            "v": 1,
            "id": self.id,
            "created": self.created,
            "endpoint": self.endpoint,
            "form": self.form,
            "tags": self.tags,
        }
        if self.context is not None:
            head["context"] = self.context
            head["text"] = self.text
        if self.headers:
            head["headers"] = self.headers
        if self.vector is not None:
            raw = np.asarray(self.vector, dtype=np.float16).tobytes()
            head["vector"] = base64.b64encode(raw).decode("ascii")
        return json.dumps(head, separators=(",", ":")).encode() + b"\n" + self.body

    @classmethod
    def decode(cls, data: bytes, *, with_body: bool = True) -> Entry:
        """Parse :meth:`encode`'s output (ValueError if it is not an entry)."""
        line, sep, body = data.partition(b"\n")
        if not sep:
            raise ValueError("not a cache entry")
        head = json.loads(line)
        vector = None
        if head.get("vector"):
            raw = base64.b64decode(head["vector"])
            vector = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        return cls(
            id=str(head["id"]),
            created=float(head["created"]),
            endpoint=str(head["endpoint"]),
            form=str(head["form"]),
            body=body if with_body else b"",
            tags=dict(head.get("tags") or {}),
            context=head.get("context"),
            text=head.get("text"),
            vector=vector,
            headers=dict(head["headers"]) if head.get("headers") else None,
        )

    def served(self, *, stream: bool) -> Served | None:
        """The answer in the shape the request wants (SSE — or, for Bedrock ConverseStream,
        AWS event-stream frames — for a stream request)."""
        extra = dict(self.headers or {})
        if stream:
            kind = EVENTSTREAM if self.endpoint == "converse" else _SSE
            if self.form == "sse":
                return Served(body=self.body, headers={**extra, "content-type": kind})
            answer = json.loads(self.body)
            return Served(
                body=replay.synthesize(self.endpoint, answer),
                headers={**extra, "content-type": kind},
            )
        if self.form == "json":
            return Served(body=self.body, headers={"content-type": _JSON, **extra})
        assembled = replay.assemble(self.endpoint, self.body)
        if assembled is None:
            return None
        return Served(body=json.dumps(assembled).encode(), headers={**extra, "content-type": _JSON})
