"""``fo.wrap(aiobotocore bedrock-runtime client)``: async Bedrock through the same event hooks.

aiobotocore (and aioboto3, built on it) keeps botocore's event system: ``client.meta.events``
is an ``AioHierarchicalEmitter``, which awaits a handler that returns an awaitable. So the
async client is metered in place exactly as the boto3 client is
(:mod:`finops.intercept.bedrock`: the same events, the same rows, one per attempt), with four
differences where aiobotocore's objects are async:

* ``before-parameter-build`` is a coroutine: a cross-provider route's target is awaited
  (``relay.arun``); the steps run with ``is_async=True``. A budget refusal raises from the
  awaited SDK call with nothing sent.
* the answer of a served request (a cache hit) travels from ``before-parameter-build`` to
  ``before-send`` in a context variable, not a thread-local slot: concurrent tasks share the
  event loop's thread, and each task has its own context. ``before-send`` returns an
  ``AioAWSResponse`` over the stored bytes, read by aiobotocore as it reads aiohttp's.
* ``after-call`` of ConverseStream / InvokeModelWithResponseStream hands the caller an
  ``async for`` watcher over aiobotocore's ``AioEventStream`` (the very same events);
* InvokeModel's body, when finops must read it (no token-count headers, or a cache miss to
  keep), is awaited and handed back to the caller as an ``AioStreamingBody`` over the same
  bytes; Converse's body to keep is awaited from the response (aiobotocore read it already).

aiobotocore pins botocore to a narrow range (3.10.0: ``botocore>=1.43.115,<1.43.118``), so
it is in no extra of this project (boto3/botocore 1.44); tested with aiobotocore 3.10.0 and
botocore 1.44.8 installed with ``--no-deps``.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from finops.intercept.bedrock import (
    _KEY,
    _OPERATIONS,
    _Metering,
    _request_view,
    _WatchedStream,
    _write_back,
)
from finops.providers.bedrock import header_usage
from finops.providers.hosts import route_for

if TYPE_CHECKING:
    from finops.metering import Meter
    from finops.pipeline import Pipeline
    from finops.providers.hosts import HostMap

__all__ = ["is_aio_bedrock_client", "wrap_aiobedrock"]

C = TypeVar("C")

_WIRE = "aws"
#: The answer a step served for the request this task is building (a cache hit), if any.
_SERVED: contextvars.ContextVar[Any] = contextvars.ContextVar("finops_aio_served", default=None)


def is_aio_bedrock_client(client: object) -> bool:
    """Whether ``client`` is an aiobotocore (or aioboto3) ``bedrock-runtime`` client."""
    meta = getattr(client, "meta", None)
    model = getattr(meta, "service_model", None)
    if getattr(model, "service_name", None) != "bedrock-runtime":
        return False
    # aiobotocore's client classes (``aiobotocore.client.BedrockRuntime``) derive from its
    # ``AioBaseClient``; their ``meta.events`` is botocore's ``EventAliaser`` over an
    # ``AioHierarchicalEmitter``
    return any(c.__module__.startswith("aiobotocore.") for c in type(client).__mro__)


def wrap_aiobedrock(
    client: C, *, meter: Meter, pipeline: Pipeline, hosts: HostMap | None = None
) -> C:
    """Meter an aiobotocore ``bedrock-runtime`` client in place; returns it."""
    meta: Any = client.meta  # type: ignore[attr-defined]
    if getattr(meta, "_finops_metered", False):
        return client
    url = str(meta.endpoint_url or "")
    route = route_for(hosts, _WIRE, url)
    hook = meter.hook(_WIRE, api_url=url or None, price_provider=route.label, host=route)
    metering = _AioMetering(meter, pipeline, hook)
    hooks = (
        ("before-parameter-build", "before", metering.abefore),
        ("after-call", "after", metering.aafter),
        ("after-call-error", "error", metering.failed),
        ("before-send", "send", metering.asend),
        ("response-received", "received", metering.received),
        ("request-created", "created", metering.retrying),
    )
    for operation in _OPERATIONS:
        for event, name, handler in hooks:
            meta.events.register(
                f"{event}.bedrock-runtime.{operation}",
                handler,
                unique_id=f"finops-{name}-{operation}",
            )
    meta._finops_metered = True
    return client


class _AioMetering(_Metering):
    __slots__ = ()

    async def abefore(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        endpoint, stream = _OPERATIONS[model.name]
        _SERVED.set(None)
        view = _request_view(params)
        sent = dict(view)  # the steps may rewrite the view in place
        call = self.pipeline.start(
            self.hook, endpoint, view, kind="deferred" if stream else "call", is_async=True
        )
        if call.relay is not None:  # a cross-provider route: the target answers
            try:
                call.served = await call.relay.arun()
            except BaseException:
                self.meter.end_call(call)
                raise
        _write_back(params, sent, call.kwargs)
        call.stream = stream
        _SERVED.set(call.served)
        context[_KEY] = (call, time.perf_counter(), self.meter.clock())

    async def asend(self, request: Any, **_: Any) -> Any:
        """``before-send``: the stored answer of a cache hit instead of the network."""
        served = _SERVED.get()
        if served is None:
            return None
        _SERVED.set(None)
        from aiobotocore.awsrequest import AioAWSResponse

        return AioAWSResponse(
            request.url, served.status, dict(served.headers), _AioRaw(served.body)
        )

    async def aafter(
        self,
        http_response: Any,
        parsed: dict[str, Any],
        model: Any,
        context: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        started = context.get(_KEY)
        body = parsed.get("body")
        data: bytes | None = None
        if (
            started is not None
            and model.name == "InvokeModel"
            and body is not None
            and int(getattr(http_response, "status_code", 200)) < 400
        ):
            call = started[0]
            headers = dict(getattr(http_response, "headers", {}) or {})
            if header_usage(headers) is None or (call.capture and call.served is None):
                try:
                    data = await body.read()
                except Exception:  # metering must never break the call
                    data = None
                if isinstance(data, bytes):
                    from botocore.response import StreamingBody

                    parsed["body"] = StreamingBody(io.BytesIO(data), len(data))  # read below
        if (
            started is not None
            and model.name == "Converse"
            and started[0].capture
            and started[0].served is None
        ):  # a miss to keep: the body as received (aiobotocore has it read already)
            with contextlib.suppress(Exception):  # metering must never break the call
                http_response = _Received(http_response, await http_response.content)
        self.after(http_response, parsed, model, context, **kwargs)
        if isinstance(data, bytes):
            parsed["body"] = _aio_body(data)  # what the caller gets: aiobotocore's own type
        for key in ("stream", "body"):
            watched = parsed.get(key)
            if type(watched) is _WatchedStream:
                parsed[key] = _AioWatchedStream.of(watched)


class _Received:
    """An ``AioAWSResponse`` seen as botocore's: ``content`` is the bytes, not a coroutine."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, response: Any, content: bytes) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.content = content


def _aio_body(data: bytes) -> Any:
    from aiobotocore.response import AioStreamingBody

    return AioStreamingBody(_AioRaw(data), len(data))


class _AioContent:
    """What aiobotocore reads of an aiohttp response's ``content`` (a ``StreamReader``)."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)
        self._size = len(data)

    async def read(self, n: int = -1) -> bytes:
        return self._buffer.read() if n is None or n < 0 else self._buffer.read(n)

    def at_eof(self) -> bool:
        return self._buffer.tell() >= self._size

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        while chunk := self._buffer.read(65536):
            yield chunk, True


class _AioRaw:
    """The raw response of a served answer, as aiobotocore reads an aiohttp response."""

    def __init__(self, data: bytes) -> None:
        self.content = _AioContent(data)

    async def read(self) -> bytes:
        return await self.content.read()

    def close(self) -> None:
        pass

    def release(self) -> None:
        pass


class _AioWatchedStream(_WatchedStream):
    """:class:`finops.intercept.bedrock._WatchedStream` for ``async for``: aiobotocore's
    ``AioEventStream`` unchanged, its usage event becoming the row when it ends."""

    @classmethod
    def of(cls, watched: _WatchedStream) -> _AioWatchedStream:
        new = cls.__new__(cls)
        new.__dict__.update(watched.__dict__)
        return new

    def __iter__(self) -> Iterator[Any]:
        return iter(self._inner)  # aiobotocore's own error: use async for

    async def __aiter__(self) -> AsyncIterator[Any]:
        status = "cancelled"
        try:
            async for event in self._inner:
                if isinstance(event, Mapping):
                    self._watch(event)
                    if self._events is not None:
                        self._events.append(event)
                yield event
            status = "ok" if self._usage is not None else "error"
        except GeneratorExit:
            raise
        except Exception as exc:
            self._end("error", type(exc).__name__)
            raise
        finally:
            self._end(status)
