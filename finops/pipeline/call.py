"""One logical SDK call as the pipeline steps, the transport and the meter see it.

A :class:`Call` is created by the facade when a wrapped SDK method is called, passed through
every configured step's ``before`` (each may read it, rewrite ``kwargs``, add fields to
``row`` or refuse), handed to the transport through an internal request header, and finally
to the steps' ``after`` when the call is over. It is the only thing the layers share.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["Call", "CallContext", "Outcome", "Served"]


@dataclass(frozen=True, slots=True)
class Served:
    """An answer a step provides instead of the network (a cache hit).

    ``body`` is what the provider would have sent: a JSON document, or for a stream request
    the SSE bytes of that endpoint's wire format. The transport hands it to the SDK as the
    response of the (unsent) request, so the caller gets the SDK's own types and streams, and
    the meter prices it like any response (a step's ``on_row`` then says it cost nothing).
    """

    body: bytes
    status: int = 200
    headers: Mapping[str, str] = field(
        default_factory=lambda: {"content-type": "application/json"}
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call ended, as the steps' ``after`` sees it.

    ``complete`` is True only for a full, successful answer (HTTP 2xx, whole body or stream,
    nothing cut or cancelled). ``body`` holds the raw response bytes (SSE as received, any
    usage chunk included) only when a step set ``call.capture`` before the call.
    """

    status: str | None  # the last attempt's row status: ok | error | cancelled | cache_hit
    http_status: int | None
    complete: bool
    cost: Decimal
    tokens: int
    served_model: str | None = None
    content_type: str | None = None
    body: bytes | None = None
    headers: Mapping[str, str] | None = None  # answer headers worth replaying (Bedrock)


@dataclass(slots=True, eq=False)
class Call:
    """Everything finops knows about one logical SDK call (all its HTTP attempts)."""

    call_id: str
    provider: str  # wire format: "openai" | "anthropic"
    endpoint: str  # "chat.completions" | "responses" | "embeddings" | "messages"
    requested_model: str | None
    stream: bool
    tags: Mapping[str, str]
    kwargs: dict[str, Any] = field(default_factory=dict)  # as the SDK will receive them
    options: dict[str, Any] = field(default_factory=dict)  # finops_* per-call options
    kind: str = "call"  # "call" | "deferred" (a manager that sends on __enter__)
    price_provider: str | None = None  # price-table provider (None: resolve from the model)
    api_url: str | None = None
    host: Any = None  # finops.providers.hosts.HostRoute: who serves it, how it is priced
    service_tier: str | None = None
    is_async: bool = False  # the SDK method is async (its facade awaits a relay)
    # -- written by steps ----------------------------------------------------------------
    row: dict[str, Any] = field(default_factory=dict)  # LedgerRow fields for every row
    strip_usage_chunk: bool = False  # finops injected include_usage: hide that chunk
    estimate: Any = None  # finops.tokens.Estimate, when a step estimated the request
    #: ``f(call, request_body)``: an estimate nothing needs before the network, made when
    #: the row is built (off the caller's thread) from the request body as it was sent.
    estimate_later: Any = None
    reservation: Any = None  # finops.budgets.Reservation, when a budget applies
    capture: bool = False  # keep the raw response bytes for the steps' ``after``
    served: Served | None = None  # answer provided by a step; nothing is sent
    #: set with a placeholder ``served`` by a step that answers through another wrapped
    #: client (cross-provider routing: :class:`finops.routing.relay.Relay`); the facade runs
    #: ``relay.run()`` / ``await relay.arun()`` before the SDK sends and serves what it returns
    relay: Any = None
    silent: bool = False  # this call's own attempts are not recorded (the relayed call's are)
    prompt_text: str | None = None  # only with store_content=True
    steps_ran: int | None = None  # how many steps' ``before`` ran (None: all of them)
    # -- written by the meter ------------------------------------------------------------
    attempts: int = 0
    spent_cost: Decimal = Decimal(0)
    spent_tokens: int = 0
    last_status: str | None = None
    last_http_status: int | None = None
    served_model: str | None = None
    content_type: str | None = None
    body: bytes | None = None
    response_headers: Mapping[str, str] | None = None  # set by seams that need them replayed
    complete: bool = False
    ended: bool = False
    created: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_attempt(self) -> int:
        """Number the next HTTP attempt of this call (1, 2, ...)."""
        with self.lock:
            self.attempts += 1
            return self.attempts

    def outcome(self) -> Outcome:
        """The call's end state for the steps' ``after``."""
        return Outcome(
            status=self.last_status,
            http_status=self.last_http_status,
            complete=self.complete,
            cost=self.spent_cost,
            tokens=self.spent_tokens,
            served_model=self.served_model,
            content_type=self.content_type,
            body=self.body,
            headers=self.response_headers,
        )


#: The name the transport and meter used before the pipeline existed.
CallContext = Call
