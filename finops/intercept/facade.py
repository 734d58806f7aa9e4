"""``fo.wrap(client)``: the facade in front of the SDK (DESIGN.md §1, steps 1–5).

How a client is wrapped, using public seams only:

1. A copy of the client is made with ``client.with_options(http_client=...)`` whose httpx2
   client carries finops' metering transport. The original client is left untouched. If the
   application configured its own ``http_client`` (proxies, certificates...), the metering
   transport sends through that client, so its configuration keeps working.
2. On that copy (an object finops owns) the generation methods — ``chat.completions.create``,
   ``responses.create``, ``embeddings.create``, ``messages.create``, ``messages.stream`` and
   their ``parse``/``stream`` helpers — are replaced by wrappers that run the pipeline's
   pre-call steps (:mod:`finops.pipeline`) *before* the SDK sends anything, then call the
   SDK's own method. ``with_raw_response`` / ``with_streaming_response`` are built by the SDK from these
   attributes, so they go through the wrappers too.
   This happens when a resource is first used (``client.chat``, ``client.responses``...),
   not at ``wrap()`` time, so an application pays only for the SDK modules it uses.
3. ``with_options`` / ``copy`` on the wrapped client return wrapped clients as well.

Return values, exceptions, stream iterators and context managers are the SDK's own.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2

from finops.intercept.aiobedrock import is_aio_bedrock_client, wrap_aiobedrock
from finops.intercept.bedrock import is_bedrock_client, wrap_bedrock
from finops.intercept.calls import HEADER, Call
from finops.intercept.frameworks import is_framework_model, wrap_framework
from finops.intercept.google import is_genai_client, wrap_genai
from finops.intercept.pool import AsyncPoolTransport, PoolTransport
from finops.intercept.transport import AsyncMeteringTransport, MeteringTransport
from finops.providers.hosts import HostMap, route_for

if TYPE_CHECKING:
    from finops.metering import ClientHook, Meter
    from finops.pipeline import Pipeline

__all__ = ["describe_client", "wrap_client"]

C = TypeVar("C")

# The SDKs' default connection limits (they are applied to a fresh transport only).
_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)

# (resource path, method, endpoint, kind). kind: "call" returns a result or a stream once
# the response headers are in; "deferred" returns a manager that sends on __enter__.
_OPENAI_METHODS: tuple[tuple[str, str, str, str], ...] = (
    ("chat.completions", "create", "chat.completions", "call"),
    ("chat.completions", "parse", "chat.completions", "call"),
    ("chat.completions", "stream", "chat.completions", "deferred"),
    ("responses", "create", "responses", "call"),
    ("responses", "parse", "responses", "call"),
    ("responses", "stream", "responses", "deferred"),
    ("embeddings", "create", "embeddings", "call"),
    # the beta resource (LangChain's ChatOpenAI streams a ``response_format`` through it)
    ("beta.chat.completions", "create", "chat.completions", "call"),
    ("beta.chat.completions", "parse", "chat.completions", "call"),
    ("beta.chat.completions", "stream", "chat.completions", "deferred"),
)
_ANTHROPIC_METHODS: tuple[tuple[str, str, str, str], ...] = (
    ("messages", "create", "messages", "call"),
    ("messages", "parse", "messages", "call"),
    ("messages", "stream", "messages", "deferred"),
    # the beta resource (LangChain's ChatAnthropic calls it when ``betas=`` is set)
    ("beta.messages", "create", "messages", "call"),
    ("beta.messages", "parse", "messages", "call"),
    ("beta.messages", "stream", "messages", "deferred"),
)


def _sdk(client: object) -> tuple[str, Any]:
    root = type(client).__module__.split(".")[0]
    if root not in ("openai", "anthropic"):
        raise TypeError(
            f"finops can wrap openai.OpenAI/AsyncOpenAI, anthropic.Anthropic/AsyncAnthropic "
            f"and google.genai.Client clients (or subclasses); got {type(client).__qualname__} from {root!r}"
        )
    return root, importlib.import_module(root)


def wrap_client(client: C, *, meter: Meter, pipeline: Pipeline, hosts: HostMap | None = None) -> C:
    """Return a metered copy of an OpenAI or Anthropic client (sync or async).

    ``pipeline`` runs the pre-call steps of every wrapped method call; ``meter`` turns each
    HTTP attempt into a ledger row; ``hosts`` says which provider serves the client's
    ``base_url`` (default: the shipped host map, ``finops/providers/hosts.py``).
    """
    if is_framework_model(client):  # LangChain / LlamaIndex models holding SDK clients
        return wrap_framework(  # type: ignore[no-any-return]
            client, lambda c: wrap_client(c, meter=meter, pipeline=pipeline, hosts=hosts)
        )
    if is_genai_client(client):
        return wrap_genai(client, meter=meter, pipeline=pipeline, hosts=hosts)
    if is_aio_bedrock_client(client):  # aiobotocore / aioboto3
        return wrap_aiobedrock(client, meter=meter, pipeline=pipeline, hosts=hosts)
    if is_bedrock_client(client):
        return wrap_bedrock(client, meter=meter, pipeline=pipeline, hosts=hosts)
    wire, sdk = _sdk(client)
    is_async = isinstance(
        client, (sdk.AsyncOpenAI if wire == "openai" else sdk.AsyncAnthropic)
    ) or isinstance(getattr(client, "_client", None), httpx2.AsyncClient)  # AsyncAnthropicBedrock
    base_url = str(getattr(client, "base_url", ""))
    route = route_for(hosts, wire, base_url)
    hook = meter.hook(wire, api_url=base_url or None, price_provider=route.label, host=route)
    # The SDK's current httpx2 client. Read only: it is handed to the new transport as the
    # thing to send through when the application configured it itself.
    existing = getattr(client, "_client", None)
    own_default = type(existing).__name__ in ("SyncHttpxClientWrapper", "AsyncHttpxClientWrapper")
    http_client: httpx2.Client | httpx2.AsyncClient
    if is_async:
        atransport = (
            AsyncMeteringTransport(hook, inner=AsyncPoolTransport(_LIMITS))
            if own_default or not isinstance(existing, httpx2.AsyncClient)
            else AsyncMeteringTransport(hook, client=existing)
        )
        http_client = sdk.DefaultAsyncHttpxClient(transport=atransport)
    else:
        transport = (
            MeteringTransport(hook, inner=PoolTransport(_LIMITS))
            if own_default or not isinstance(existing, httpx2.Client)
            else MeteringTransport(hook, client=existing)
        )
        http_client = sdk.DefaultHttpxClient(transport=transport)
    wrapped = client.with_options(http_client=http_client)  # type: ignore[attr-defined]
    w = _Wrapping(meter, pipeline, hook, wire, hosts, is_async=is_async)
    eager = _lazy_resources(w, wrapped)
    _wrap_resources(w, wrapped, only=eager)
    return wrapped  # type: ignore[no-any-return]


def describe_client(
    client: object, hosts: HostMap | None = None
) -> tuple[str, str, tuple[bool, ...]] | None:
    """(price provider label, SDK wire, flavours: False sync / True async) of a wrapped
    client, for cross-provider routes; None for what a route cannot send through
    (LangChain chat models)."""
    if is_genai_client(client):
        return "google", "google", (False, True)  # client.models and client.aio.models
    if is_aio_bedrock_client(client):
        return "aws", "aws", (True,)
    if is_bedrock_client(client):
        return "aws", "aws", (False,)
    root = type(client).__module__.split(".")[0]
    if root not in ("openai", "anthropic"):
        return None
    is_async = isinstance(getattr(client, "_client", None), httpx2.AsyncClient)
    label = route_for(hosts, root, str(getattr(client, "base_url", ""))).label or root
    return str(label), root, (is_async,)


class _Wrapping:
    """What every wrapped method of one client needs."""

    __slots__ = ("hook", "hosts", "is_async", "meter", "pipeline", "wire")

    def __init__(
        self,
        meter: Meter,
        pipeline: Pipeline,
        hook: ClientHook,
        wire: str,
        hosts: HostMap | None = None,
        *,
        is_async: bool = False,
    ) -> None:
        self.meter = meter
        self.pipeline = pipeline
        self.hook = hook
        self.wire = wire
        self.hosts = hosts
        self.is_async = is_async

    def start(
        self, endpoint: str, kind: str, kwargs: dict[str, Any]
    ) -> tuple[Call, dict[str, Any]]:
        """Run the pre-call steps; the kwargs to send carry the call's id header."""
        call = self.pipeline.start(self.hook, endpoint, kwargs, kind=kind, is_async=self.is_async)
        return call, with_call_header(call.kwargs, call)


def _methods(wire: str) -> tuple[tuple[str, str, str, str], ...]:
    return _OPENAI_METHODS if wire == "openai" else _ANTHROPIC_METHODS


def _lazy_resources(w: _Wrapping, client: Any) -> set[str]:
    """Wrap the client's resources when they are first used, not now.

    The SDKs build ``client.chat``, ``client.responses``, ... on first access
    (``functools.cached_property``), importing their modules then — ``responses`` alone takes
    ~0.25–0.6 s here. Wrapping every resource at ``wrap()`` time would make every user pay for
    all of them. So the wrapped copy (an object finops owns) is given a subclass of its own
    class whose resource properties build the SDK's resource and wrap its methods on first
    access. The SDK's classes are not modified; ``isinstance`` checks still hold; copies made
    by ``with_options``/``copy`` (``self.__class__(...)``) inherit the lazy wrapping.

    Returns the top-level resources that could not be made lazy (wrapped eagerly instead).
    """
    cls = type(client)
    base: type = getattr(cls, "__finops_base__", cls)
    eager: set[str] = set()
    namespace: dict[str, Any] = {
        "__finops_base__": base,
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
    }
    for top in sorted({path.split(".")[0] for path, *_ in _methods(w.wire)}):
        original = inspect.getattr_static(base, top, None)
        if isinstance(original, functools.cached_property):
            namespace[top] = _lazy_resource(w, top, original)
        else:
            eager.add(top)
    if len(namespace) > 4:
        client.__class__ = type(base.__name__, (base,), namespace)
    return eager


def _lazy_resource(w: _Wrapping, top: str, original: functools.cached_property[Any]) -> Any:
    def build(self: Any) -> Any:
        resource = original.func(self)
        _wrap_resources(w, resource, only={top}, under=top)
        return resource

    build.__name__ = top
    build.__doc__ = original.__doc__
    return functools.cached_property(build)


def _wrap_resources(
    w: _Wrapping, client: Any, *, only: set[str] | None = None, under: str | None = None
) -> None:
    """Wrap the generation methods below ``client`` (a client, or the ``under`` resource)."""
    for path, name, endpoint, kind in _methods(w.wire):
        parts = path.split(".")
        if only is not None and parts[0] not in only:
            continue
        if under is not None:
            parts = parts[1:]  # ``client`` is already the top-level resource
        resource: Any = client
        try:
            for part in parts:
                resource = getattr(resource, part)
        except AttributeError:
            continue
        original = getattr(resource, name, None)
        if original is None or getattr(original, "__finops_wrapped__", False):
            continue
        setattr(resource, name, _facade(w, original, endpoint, kind))
    if under is not None:
        return

    # Copies made from the wrapped client stay wrapped.
    for copier in ("with_options", "copy"):
        original_copy = getattr(client, copier, None)
        if original_copy is not None:
            setattr(client, copier, _rewrap_copy(w, original_copy))


def _rewrap_copy(w: _Wrapping, original: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    def copy(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("http_client") is not None:
            # A new transport was asked for: meter it like a freshly wrapped client.
            return wrap_client(
                original(*args, **kwargs), meter=w.meter, pipeline=w.pipeline, hosts=w.hosts
            )
        new = original(*args, **kwargs)  # an instance of the lazy subclass: resources wrap
        _wrap_resources(w, new, only=_eager_tops(w, new))  # on first use; copies stay wrapped
        return new

    return copy


def _eager_tops(w: _Wrapping, client: Any) -> set[str]:
    """Top-level resources of ``client`` that are not wrapped lazily by its class."""
    cls = type(client)
    return {
        top
        for top in {path.split(".")[0] for path, *_ in _methods(w.wire)}
        if "__finops_base__" not in cls.__dict__ or top not in cls.__dict__
    }


def _facade(
    w: _Wrapping, original: Callable[..., Any], endpoint: str, kind: str
) -> Callable[..., Any]:
    end_call = w.meter.end_call
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def acall(*args: Any, **kwargs: Any) -> Any:
            ctx, kwargs = w.start(endpoint, kind, kwargs)
            return await _end_when_awaited(ctx, end_call, lambda: original(*args, **kwargs))

        acall.__finops_wrapped__ = True  # type: ignore[attr-defined]
        return acall

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        ctx, kwargs = w.start(endpoint, kind, kwargs)
        if ctx.relay is not None and w.is_async:  # an async method behind a sync decorator
            return _end_when_awaited(ctx, end_call, lambda: original(*args, **kwargs))
        try:
            if ctx.relay is not None:  # a cross-provider route: the target answers
                ctx.served = ctx.relay.run()
            result = original(*args, **kwargs)
        except BaseException:
            end_call(ctx)
            raise
        if inspect.isawaitable(result):  # an async method the SDK wraps in a sync decorator
            return _end_when_awaited(ctx, end_call, lambda: result, relayed=True)
        if kind == "call" and not ctx.stream:
            end_call(ctx)
        return result

    call.__finops_wrapped__ = True  # type: ignore[attr-defined]
    return call


async def _end_when_awaited(
    ctx: Call, end_call: Callable[[Call], None], send: Callable[[], Any], *, relayed: bool = False
) -> Any:
    """``send()``'s result, awaited; the call ends when it is (a stream's call ends with its
    stream), or at once on a failure.

    For async methods: coroutine functions, and anthropic's ``AsyncMessages.create`` (and
    AsyncAnthropicBedrock's), a sync decorator returning the SDK's coroutine — the call must
    stay registered until that coroutine has sent the request. A cross-provider route's
    answer (``ctx.relay``) is awaited first, unless ``relayed`` (already run), then the
    SDK's own coroutine parses it.
    """
    try:
        if ctx.relay is not None and not relayed:  # a cross-provider route: the target answers
            ctx.served = await ctx.relay.arun()
        value = send()
        if inspect.isawaitable(value):
            value = await value
    except BaseException:
        end_call(ctx)
        raise
    if not ctx.stream:
        end_call(ctx)
    return value


def with_call_header(kwargs: dict[str, Any], ctx: Call) -> dict[str, Any]:
    """``kwargs`` with finops' internal header added to the SDK's ``extra_headers``."""
    extra = kwargs.get("extra_headers")
    headers: dict[str, Any] = dict(extra) if isinstance(extra, Mapping) else {}
    headers[HEADER] = ctx.call_id
    return {**kwargs, "extra_headers": headers}
