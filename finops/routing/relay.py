"""Sending a cross-provider route through the target's wrapped client (see
:mod:`finops.routing.cross` for the translation).

* :class:`Clients` — the clients wrapped on one FinOps, by price provider (``openai``,
  ``anthropic``, ``google``, ``aws``, or an OpenAI-compatible host's label such as
  ``groq``) and by flavour (sync / async). ``FinOps.wrap`` adds each client it wraps; a
  route to a provider with no wrapped client is never taken
  (``no_route:cannot_serve:target_not_wrapped``).
* :class:`Relay` — one routed call: the facade of the *caller's* SDK runs it (awaits it for
  an async method) before its SDK sends, and hands the :class:`~finops.pipeline.call.Served`
  answer it returns to the caller's SDK, which parses it into its own types. The target's
  call goes through the target client's own pipeline (cache, estimate, budget reservation at
  the target's price) and records the call's one row; the caller's own attempt is not
  recorded (``Call.silent``).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from finops.errors import FinOpsError
from finops.pipeline.call import Served
from finops.routing.cross import Answer, answer_of, caller_error, caller_json

__all__ = ["RELAYED", "Clients", "Relay", "method_of"]

EVENTSTREAM = "application/vnd.amazon.eventstream"

#: The caller's routing fields while its relayed call runs (read by the target's route step,
#: which records them on the target's row instead of deciding again).
RELAYED: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "finops_relayed", default=None
)


class Clients:
    """The wrapped clients of one FinOps, by (price provider, async?); the latest wins."""

    def __init__(self) -> None:
        self._by: dict[tuple[str, bool], tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, client: Any, *, label: str, wire: str, flavours: tuple[bool, ...]) -> None:
        """Remember a wrapped client (``FinOps.wrap``, with
        :func:`finops.intercept.facade.describe_client`'s reading of it)."""
        with self._lock:
            for is_async in flavours:
                self._by[(label, is_async)] = (wire, client)

    def labels(self) -> frozenset[str]:
        """Price providers some wrapped client serves."""
        return frozenset(label for label, _ in self._by)

    def get(self, provider: str, *, is_async: bool) -> tuple[str, Any, bool] | None:
        """(wire, client, client is async) to send a ``provider`` route from a sync or async
        caller: an async caller may use a sync client (in a worker thread), a sync caller
        only a sync one."""
        found = self._by.get((provider, is_async))
        if found is not None:
            return found[0], found[1], is_async
        if is_async:
            found = self._by.get((provider, False))
            if found is not None:
                return found[0], found[1], False
        return None


def method_of(wire: str, client: Any, is_async: bool) -> Any:
    """The generation method a relay calls on a target client of ``wire``."""
    if wire == "openai":
        return client.chat.completions.create
    if wire == "anthropic":
        return client.messages.create
    if wire == "google":
        return (client.aio.models if is_async else client.models).generate_content
    return client.converse  # aws


@dataclass(slots=True)
class Relay:
    """One cross-provider call: target kwargs, the client to send them through, and how to
    give the answer back in the caller's shape."""

    provider: str  # target price provider
    wire: str  # target SDK wire
    client: Any
    client_async: bool
    model: str  # target model id
    kwargs: dict[str, Any]  # the target method's keyword arguments
    caller_wire: str
    caller_endpoint: str
    stream: bool  # the caller asked for a stream: the answer is served as its SSE
    tags: Mapping[str, str]
    fields: dict[str, Any] = field(default_factory=dict)  # routing fields for the target row
    options: dict[str, Any] = field(default_factory=dict)  # finops_* passed on

    def _call_kwargs(self) -> dict[str, Any]:
        if self.wire == "aws":
            return dict(self.kwargs)  # boto3 validates its parameters: no finops_* options
        return {**self.kwargs, **self.options}

    @contextmanager
    def _context(self) -> Iterator[None]:
        from finops.context import tags

        token = RELAYED.set(self.fields)
        try:
            with tags(**self.tags):
                yield
        finally:
            RELAYED.reset(token)

    def run(self) -> Served:
        """Send through the target's sync client; the caller's answer."""
        try:
            with self._context():
                result = method_of(self.wire, self.client, False)(**self._call_kwargs())
        except FinOpsError:
            raise  # a budget or cost cap refused it before the network: the caller's error too
        except Exception as exc:
            return self._failed(exc)
        return self._served(result)

    async def arun(self) -> Served:
        """Send through the target's async client (or its sync one in a worker thread)."""
        try:
            with self._context():
                method = method_of(self.wire, self.client, self.client_async)
                if self.client_async:
                    result = await method(**self._call_kwargs())
                else:
                    result = await asyncio.to_thread(method, **self._call_kwargs())
        except FinOpsError:
            raise
        except Exception as exc:
            return self._failed(exc)
        return self._served(result)

    def _served(self, result: Any) -> Served:
        try:
            answer: Answer = answer_of(self.wire, result, model=self.model)
            doc = caller_json(self.caller_wire, answer)
        except Exception as exc:
            return self._failed(exc)
        import json

        if self.stream:
            from finops.cache.replay import synthesize

            kind = EVENTSTREAM if self.caller_wire == "aws" else "text/event-stream"
            return Served(
                body=synthesize(self.caller_endpoint, doc), headers={"content-type": kind}
            )
        return Served(body=json.dumps(doc).encode())

    def _failed(self, exc: BaseException) -> Served:
        """The target failed (after its own retries): the caller's SDK raises its own error
        class with the target's status. The message names no key or header, only the type;
        the target's row has the details."""
        status = _status_of(exc)
        headers = {"content-type": "application/json", "x-should-retry": "false"}
        if self.caller_wire == "aws":
            # botocore retries 429/5xx itself (the retry would reach the network): Bedrock's
            # own "model error" status, which it does not retry
            status = 424
            headers["x-amzn-errortype"] = "ModelErrorException"
        message = (
            f"finops routed this request to {self.provider}:{self.model}, which failed with "
            f"{type(exc).__name__} (HTTP {status}); the target's ledger row has the details. "
            f"Pass finops_route=False to call the requested model."
        )
        return Served(
            body=caller_error(self.caller_wire, status, message),
            status=status,
            headers=headers,
        )


def _status_of(exc: BaseException) -> int:
    for name in ("status_code", "code", "status"):
        value = getattr(exc, name, None)
        if isinstance(value, int) and 400 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):  # botocore ClientError
        code = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if isinstance(code, int) and 400 <= code < 600:
            return code
    return 502
