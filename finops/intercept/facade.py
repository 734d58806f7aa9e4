"""``fo.wrap(client)``: the facade in front of the SDK (DESIGN.md §1, steps 1–5).

How a client is wrapped, using public seams only:

1. A copy of the client is made with ``client.with_options(http_client=...)`` whose httpx2
   client carries finops' metering transport. The original client is left untouched. If the
   application configured its own ``http_client`` (proxies, certificates...), the metering
   transport sends through that client, so its configuration keeps working.
2. On that copy (an object finops owns) the generation methods — ``chat.completions.create``,
   ``responses.create``, ``embeddings.create``, ``messages.create``, ``messages.stream`` and
   their ``parse``/``stream`` helpers — are replaced by wrappers that run the pre-call steps
   (tags, estimate, budget check) *before* the SDK sends anything, then call the SDK's own
   method. ``with_raw_response`` / ``with_streaming_response`` are built by the SDK from these
   attributes, so they go through the wrappers too.
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

from finops.intercept.calls import HEADER, CallContext
from finops.intercept.transport import AsyncMeteringTransport, MeteringTransport
from finops.providers.hosts import HostMap, HostRoute

if TYPE_CHECKING:
    from finops.core import FinOps
    from finops.meter import ClientHook

__all__ = ["wrap_client"]

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
)
_ANTHROPIC_METHODS: tuple[tuple[str, str, str, str], ...] = (
    ("messages", "create", "messages", "call"),
    ("messages", "parse", "messages", "call"),
    ("messages", "stream", "messages", "deferred"),
)


def _sdk(client: object) -> tuple[str, Any]:
    root = type(client).__module__.split(".")[0]
    if root not in ("openai", "anthropic"):
        raise TypeError(
            f"finops can wrap openai.OpenAI/AsyncOpenAI and anthropic.Anthropic/AsyncAnthropic "
            f"clients (or subclasses); got {type(client).__qualname__} from {root!r}"
        )
    return root, importlib.import_module(root)


def _host_route(fo: FinOps, wire: str, base_url: str) -> HostRoute:
    """Who serves calls on ``base_url`` and which price table applies (providers/hosts.py)."""
    hosts = getattr(fo, "_hosts", None)
    if not isinstance(hosts, HostMap):
        hosts = _default_hosts()
    return hosts.route(base_url, wire=wire)


@functools.lru_cache(maxsize=1)
def _default_hosts() -> HostMap:
    return HostMap()


def wrap_client(fo: FinOps, client: C) -> C:
    """Return a metered copy of an OpenAI or Anthropic client (sync or async)."""
    wire, sdk = _sdk(client)
    is_async = isinstance(client, (sdk.AsyncOpenAI if wire == "openai" else sdk.AsyncAnthropic))
    base_url = str(getattr(client, "base_url", ""))
    route = _host_route(fo, wire, base_url)
    hook = fo._meter.hook(wire, api_url=base_url or None, price_provider=route.label, host=route)
    # The SDK's current httpx2 client. Read only: it is handed to the new transport as the
    # thing to send through when the application configured it itself.
    existing = getattr(client, "_client", None)
    own_default = type(existing).__name__ in ("SyncHttpxClientWrapper", "AsyncHttpxClientWrapper")
    http_client: httpx2.Client | httpx2.AsyncClient
    if is_async:
        atransport = (
            AsyncMeteringTransport(hook, inner=httpx2.AsyncHTTPTransport(limits=_LIMITS))
            if own_default or not isinstance(existing, httpx2.AsyncClient)
            else AsyncMeteringTransport(hook, client=existing)
        )
        http_client = sdk.DefaultAsyncHttpxClient(transport=atransport)
    else:
        transport = (
            MeteringTransport(hook, inner=httpx2.HTTPTransport(limits=_LIMITS))
            if own_default or not isinstance(existing, httpx2.Client)
            else MeteringTransport(hook, client=existing)
        )
        http_client = sdk.DefaultHttpxClient(transport=transport)
    wrapped = client.with_options(http_client=http_client)  # type: ignore[attr-defined]
    _wrap_resources(fo, wrapped, hook, wire)
    return wrapped  # type: ignore[no-any-return]


def _wrap_resources(fo: FinOps, client: Any, hook: ClientHook, wire: str) -> None:
    methods = _OPENAI_METHODS if wire == "openai" else _ANTHROPIC_METHODS
    for path, name, endpoint, kind in methods:
        resource: Any = client
        try:
            for part in path.split("."):
                resource = getattr(resource, part)
        except AttributeError:
            continue
        original = getattr(resource, name, None)
        if original is None or getattr(original, "__finops_wrapped__", False):
            continue
        setattr(resource, name, _facade(fo, hook, original, endpoint, kind, wire))

    # Copies made from the wrapped client stay wrapped.
    for copier in ("with_options", "copy"):
        original_copy = getattr(client, copier, None)
        if original_copy is not None:
            setattr(client, copier, _rewrap_copy(fo, hook, original_copy, wire))


def _rewrap_copy(fo: FinOps, hook: ClientHook, original: Callable[..., Any], wire: str) -> Any:
    @functools.wraps(original)
    def copy(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("http_client") is not None:
            # A new transport was asked for: meter it like a freshly wrapped client.
            return wrap_client(fo, original(*args, **kwargs))
        new = original(*args, **kwargs)
        _wrap_resources(fo, new, hook, wire)
        return new

    return copy


def _facade(
    fo: FinOps,
    hook: ClientHook,
    original: Callable[..., Any],
    endpoint: str,
    kind: str,
    wire: str,
) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def acall(*args: Any, **kwargs: Any) -> Any:
            ctx, kwargs = fo._start_call(hook, endpoint, kwargs, wire=wire, kind=kind)
            try:
                result = await original(*args, **kwargs)
            except BaseException:
                fo._meter.end_call(ctx)
                raise
            if not ctx.stream:
                fo._meter.end_call(ctx)
            return result

        acall.__finops_wrapped__ = True  # type: ignore[attr-defined]
        return acall

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        ctx, kwargs = fo._start_call(hook, endpoint, kwargs, wire=wire, kind=kind)
        try:
            result = original(*args, **kwargs)
        except BaseException:
            fo._meter.end_call(ctx)
            raise
        if kind == "call" and not ctx.stream:
            fo._meter.end_call(ctx)
        return result

    call.__finops_wrapped__ = True  # type: ignore[attr-defined]
    return call


def with_call_header(kwargs: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """``kwargs`` with finops' internal header added to the SDK's ``extra_headers``."""
    extra = kwargs.get("extra_headers")
    headers: dict[str, Any] = dict(extra) if isinstance(extra, Mapping) else {}
    headers[HEADER] = ctx.call_id
    return {**kwargs, "extra_headers": headers}
