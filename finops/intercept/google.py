"""``fo.wrap(genai.Client(...))``: the Google Gen AI SDK (Gemini API and Vertex AI).

Public seams only, as for the OpenAI and Anthropic SDKs:

1. A new ``genai.Client`` is made with the same settings (API key or Vertex project,
   location and credentials, and the application's ``http_options``) plus
   ``HttpOptions(httpx_client=..., httpx_async_client=...)`` — the SDK's documented way to
   hand it the HTTP clients it sends through — whose transports are finops' metering
   transports. If the application passed its own httpx2 clients, the metering transports send
   through them. The original client is left untouched.
2. On that copy, ``models.generate_content``, ``models.generate_content_stream`` and
   ``models.embed_content`` (and the same under ``aio.models``) are wrapped: the call-path
   steps (tags, estimate, budget reservation...) run *before* the SDK sends anything, so a
   budget refuses with nothing sent. The SDK sends a call's requests on the caller's thread
   or task — a non-stream method before it returns, a stream (automatic function calling
   included) while it is iterated — so the call is named in
   :data:`finops.intercept.calls.SENDING` while the method runs and around each step of the
   stream's iterator, and no per-request header is added (merging a per-request
   ``http_options`` costs google-genai a deep copy of the client's options, ~70 µs a call).

Return values, exceptions and stream iterators are the SDK's own.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2

from finops.intercept.calls import SENDING, Call
from finops.intercept.transport import AsyncMeteringTransport, MeteringTransport
from finops.providers.hosts import route_for

if TYPE_CHECKING:
    from finops.metering import ClientHook, Meter
    from finops.pipeline import Pipeline
    from finops.providers.hosts import HostMap

__all__ = ["is_genai_client", "wrap_genai"]

C = TypeVar("C")

_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
_WIRE = "google"

# (method, endpoint, kind): "call" returns the result; "stream" returns an iterator
_METHODS: tuple[tuple[str, str, str], ...] = (
    ("generate_content", "generate_content", "call"),
    ("generate_content_stream", "generate_content", "stream"),
    ("embed_content", "embed_content", "call"),
)
_MODEL_PREFIXES = ("projects/", "publishers/", "models/")


def is_genai_client(client: object) -> bool:
    """Whether ``client`` is a ``google.genai.Client``."""
    return type(client).__module__.startswith("google.genai") and hasattr(client, "models")


def model_id(model: object) -> str | None:
    """``models/gemini-2.5-flash`` and Vertex resource names → ``gemini-2.5-flash``."""
    if not isinstance(model, str):
        return None
    if model.startswith(_MODEL_PREFIXES):
        return model.rsplit("/", 1)[-1]
    return model


def wrap_genai(client: C, *, meter: Meter, pipeline: Pipeline, hosts: HostMap | None = None) -> C:
    """A metered copy of a ``google.genai.Client`` (its ``aio`` side included)."""
    from google import genai
    from google.genai import types

    api = client._api_client  # type: ignore[attr-defined]  # read only: the client's settings
    options: types.HttpOptions = api._http_options
    base_url = str(options.base_url or "")
    route = route_for(hosts, _WIRE, base_url)
    hook = meter.hook(_WIRE, api_url=base_url or None, price_provider=route.label, host=route)
    sync_existing = options.httpx_client
    async_existing = options.httpx_async_client
    # A transport handed in through client_args / async_client_args (proxies, test replays)
    # is kept: the metering transport sends through it.
    sync_inner = dict(options.client_args or {}).get("transport")
    async_inner = dict(options.async_client_args or {}).get("transport")
    sync_http = httpx2.Client(
        transport=MeteringTransport(hook, client=sync_existing)
        if isinstance(sync_existing, httpx2.Client)
        else MeteringTransport(
            hook,
            inner=sync_inner
            if isinstance(sync_inner, httpx2.BaseTransport)
            else httpx2.HTTPTransport(limits=_LIMITS),
        ),
        timeout=None,
    )
    async_http = httpx2.AsyncClient(
        transport=AsyncMeteringTransport(hook, client=async_existing)
        if isinstance(async_existing, httpx2.AsyncClient)
        else AsyncMeteringTransport(
            hook,
            inner=async_inner
            if isinstance(async_inner, httpx2.AsyncBaseTransport)
            else httpx2.AsyncHTTPTransport(limits=_LIMITS),
        ),
        timeout=None,
    )
    new_options = options.model_copy(
        update={"httpx_client": sync_http, "httpx_async_client": async_http}
    )
    vertex = bool(api.vertexai)
    kwargs: dict[str, Any] = {"vertexai": vertex, "http_options": new_options}
    if vertex and (api.project or api.location) and not getattr(api, "custom_base_url", None):
        kwargs.update(project=api.project, location=api.location, credentials=api._credentials)
    elif api.api_key:
        kwargs["api_key"] = api.api_key
    else:
        kwargs.update(project=api.project, location=api.location, credentials=api._credentials)
    wrapped = genai.Client(**kwargs)
    for models in (wrapped.models, wrapped.aio.models):
        for name, endpoint, kind in _METHODS:
            original = getattr(models, name, None)
            if original is not None and not getattr(original, "__finops_wrapped__", False):
                setattr(models, name, _wrap_method(meter, pipeline, hook, original, endpoint, kind))
    return wrapped  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class _TextEstimate:
    """For embeddings (no usage in Gemini API responses): ~4 bytes a token of the input."""

    input_tokens: int
    output_tokens_max: int = 0
    cost_max: Decimal | None = None
    exact: bool = False


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_text_of(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(_text_of(v) for v in value)
    text = getattr(value, "text", None)
    if isinstance(text, str):
        return text
    parts = getattr(value, "parts", None)
    return _text_of(parts) if parts else ""


def _start(
    pipeline: Pipeline,
    hook: ClientHook,
    endpoint: str,
    kind: str,
    kwargs: dict[str, Any],
    *,
    is_async: bool = False,
) -> Call:
    call = pipeline.start(
        hook, endpoint, kwargs, kind="deferred" if kind == "stream" else "call", is_async=is_async
    )
    call.requested_model = model_id(call.kwargs.get("model")) or call.requested_model
    if endpoint == "embed_content" and getattr(call.estimate, "input_tokens", None) is None:
        text = _text_of(call.kwargs.get("contents"))
        call.estimate = _TextEstimate(input_tokens=(len(text.encode()) + 3) // 4)
    return call


def _wrap_method(
    meter: Meter,
    pipeline: Pipeline,
    hook: ClientHook,
    original: Callable[..., Any],
    endpoint: str,
    kind: str,
) -> Callable[..., Any]:
    import inspect

    end_call = meter.end_call
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def acall(*args: Any, **kwargs: Any) -> Any:
            call = _start(pipeline, hook, endpoint, kind, kwargs, is_async=True)
            token = SENDING.set((hook, call))
            try:
                if call.relay is not None:  # a cross-provider route: the target answers
                    call.served = await call.relay.arun()
                result = await original(*args, **call.kwargs)
            except BaseException:
                end_call(call)
                raise
            finally:
                SENDING.reset(token)
            if kind == "stream":
                return _aiterate(result, call, end_call, hook)
            end_call(call)
            return result

        acall.__finops_wrapped__ = True  # type: ignore[attr-defined]
        return acall

    @functools.wraps(original)
    def method(*args: Any, **kwargs: Any) -> Any:
        call = _start(pipeline, hook, endpoint, kind, kwargs)
        token = SENDING.set((hook, call))
        try:
            if call.relay is not None:  # a cross-provider route: the target answers
                call.served = call.relay.run()
            result = original(*args, **call.kwargs)
        except BaseException:
            end_call(call)
            raise
        finally:
            SENDING.reset(token)
        if kind == "stream":
            return _iterate(result, call, end_call, hook)
        end_call(call)
        return result

    method.__finops_wrapped__ = True  # type: ignore[attr-defined]
    return method


def _iterate(
    chunks: Iterator[Any], call: Call, end_call: Callable[[Call], None], hook: ClientHook
) -> Iterator[Any]:
    """The SDK's stream, unchanged; the call ends when it does (or fails, or is dropped).

    Each step of the SDK's iterator runs with the call named in ``SENDING``: that is when
    google-genai sends the stream's requests. The name is set and reset within one step, so
    it never leaks to the application's code between chunks, nor to another stream."""
    named = (hook, call)
    chunks = iter(chunks)
    try:
        while True:
            token = SENDING.set(named)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                SENDING.reset(token)
            yield chunk
    finally:
        try:
            close = getattr(chunks, "close", None)  # as ``yield from`` would close it
            if close is not None:
                close()
        finally:
            end_call(call)


async def _aiterate(
    chunks: AsyncIterator[Any], call: Call, end_call: Callable[[Call], None], hook: ClientHook
) -> AsyncIterator[Any]:
    named = (hook, call)
    chunks = aiter(chunks)
    try:
        while True:
            token = SENDING.set(named)
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            finally:
                SENDING.reset(token)
            yield chunk
    finally:
        end_call(call)
