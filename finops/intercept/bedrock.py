"""``fo.wrap(boto3.client("bedrock-runtime"))``: AWS Bedrock through botocore's event hooks.

botocore has no public way to copy a client, so the client is metered *in place*: finops
registers handlers on the client's own event system (``client.meta.events``, one per client;
other clients of the same session are not affected) and returns the same object:

* ``before-parameter-build.bedrock-runtime.<Operation>`` runs the call-path steps (tags,
  estimate, budget reservation...) before botocore builds or sends anything — a refusal
  raises from the SDK call with nothing sent — and stores the call in the request context;
* ``after-call.bedrock-runtime.<Operation>`` prices the response and writes the row: usage
  from ``Converse``'s body, from ``InvokeModel``'s token-count headers, or — for
  ``ConverseStream`` — from the final ``metadata`` event, by handing the caller the SDK's
  event stream wrapped in a watcher that yields the very same events;
* ``after-call-error.bedrock-runtime.<Operation>`` records a failed call;
* ``response-received`` / ``request-created.bedrock-runtime.<Operation>``: one row per HTTP
  attempt, as the OpenAI and Anthropic transports write. botocore retries below the SDK call
  (a ``ThrottlingException``, a 5xx, a dropped connection); ``response-received`` fires after
  each attempt and notes its outcome in the request context, and ``request-created`` fires
  when botocore builds the next attempt — so a noted outcome seen there is an attempt that
  was retried: it becomes its own row (``status="error"``, its HTTP status,
  ``error_type="http_429"`` or the exception's class, the AWS error code in
  ``error_message``, no usage, no cost) under the same ``call_id``, ``attempt`` 1, 2, ...
  The last attempt's row is written by ``after-call`` / ``after-call-error`` as before;
* ``before-send.bedrock-runtime.<Operation>`` answers a request a step served (a cache hit)
  with an ``AWSResponse`` built from the stored bytes — botocore's documented short-circuit:
  the first non-None response of a ``before-send`` handler is used instead of sending. So
  nothing leaves the process, and botocore parses the bytes itself (the caller gets its
  own dicts, ``StreamingBody`` and ``EventStream``). ``before-send`` receives only the
  prepared request, so the served answer travels from ``before-parameter-build`` to it in a
  thread-local slot (both run in the caller's thread, in that order, within one SDK call).

With a cache configured, the answer of a miss is kept: Converse's JSON body as received,
InvokeModel's body and its ``x-amzn-bedrock-*`` headers, and for ConverseStream the events
the caller iterated, assembled into the Converse JSON (a stream hit gets them back as AWS
event-stream frames). InvokeModelWithResponseStream is not cached.

Each row's ``ts_start`` and latency are its own attempt's (the first from the SDK call).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from finops.providers.bedrock import (
    assemble_converse_events,
    body_usage,
    converse_usage,
    header_usage,
    invocation_usage,
    model_id,
)
from finops.providers.hosts import route_for

if TYPE_CHECKING:
    from finops.metering import ClientHook, Meter
    from finops.pipeline import Pipeline
    from finops.pipeline.call import Call
    from finops.providers.hosts import HostMap
    from finops.usage import Usage

__all__ = ["is_bedrock_client", "wrap_bedrock"]

C = TypeVar("C")

_WIRE = "aws"
_KEY = "finops_call"
_PENDING = "finops_attempt"  # the outcome of the attempt just received, until it is known
# whether botocore retries it
#: Request members copied into the call's view verbatim (the cache key, routing).
_PASSTHROUGH = (
    "inferenceConfig",
    "additionalModelRequestFields",
    "guardrailConfig",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
    "outputConfig",
    "contentType",
    "accept",
    "trace",
    "guardrailIdentifier",
    "guardrailVersion",
    "performanceConfigLatency",
)
_CACHED_HEADERS = ("content-type", "x-amzn-bedrock-")
# operation -> (endpoint, stream)
_OPERATIONS = {
    "Converse": ("converse", False),
    "ConverseStream": ("converse", True),
    "InvokeModel": ("invoke_model", False),
    "InvokeModelWithResponseStream": ("invoke_model", True),
}


def is_bedrock_client(client: object) -> bool:
    """Whether ``client`` is a boto3/botocore ``bedrock-runtime`` client."""
    meta = getattr(client, "meta", None)
    model = getattr(meta, "service_model", None)
    return getattr(model, "service_name", None) == "bedrock-runtime"


def wrap_bedrock(client: C, *, meter: Meter, pipeline: Pipeline, hosts: HostMap | None = None) -> C:
    """Meter a ``bedrock-runtime`` client in place (see the module docstring); returns it."""
    meta: Any = client.meta  # type: ignore[attr-defined]
    if getattr(meta, "_finops_metered", False):
        return client
    url = str(meta.endpoint_url or "")
    route = route_for(hosts, _WIRE, url)
    hook = meter.hook(_WIRE, api_url=url or None, price_provider=route.label, host=route)
    meter_ = _Metering(meter, pipeline, hook)
    events = meta.events
    for operation in _OPERATIONS:
        events.register(
            f"before-parameter-build.bedrock-runtime.{operation}",
            meter_.before,
            unique_id=f"finops-before-{operation}",
        )
        events.register(
            f"after-call.bedrock-runtime.{operation}",
            meter_.after,
            unique_id=f"finops-after-{operation}",
        )
        events.register(
            f"after-call-error.bedrock-runtime.{operation}",
            meter_.failed,
            unique_id=f"finops-error-{operation}",
        )
        events.register(
            f"before-send.bedrock-runtime.{operation}",
            meter_.send,
            unique_id=f"finops-send-{operation}",
        )
        events.register(
            f"response-received.bedrock-runtime.{operation}",
            meter_.received,
            unique_id=f"finops-received-{operation}",
        )
        events.register(
            f"request-created.bedrock-runtime.{operation}",
            meter_.retrying,
            unique_id=f"finops-created-{operation}",
        )
    meta._finops_metered = True
    return client


def _request_view(params: Mapping[str, Any]) -> dict[str, Any]:
    """What the estimate and budget steps read (``model``, ``messages``, ``max_tokens``)."""
    view: dict[str, Any] = {"model": model_id(params.get("modelId"))}
    for key in ("messages", "system", "toolConfig"):
        if key in params:
            view[key if key != "toolConfig" else "tools"] = params[key]
    for key in _PASSTHROUGH:
        if key in params:
            view[key] = params[key]
    limit = dict(params.get("inferenceConfig") or {}).get("maxTokens")
    body = params.get("body")
    if body is not None:
        raw = body if isinstance(body, (str, bytes)) else getattr(body, "read", lambda: b"")()
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        view["input"] = text
        try:
            decoded = json.loads(text)
            if isinstance(decoded, Mapping):
                limit = limit or decoded.get("max_tokens") or decoded.get("max_gen_len")
        except ValueError:
            pass
    if isinstance(limit, int):
        view["max_tokens"] = limit
    return view


def _write_back(params: dict[str, Any], view: Mapping[str, Any], kwargs: Mapping[str, Any]) -> None:
    """Copy what a step rewrote in the view (routing, a budget downgrade) into the request."""
    target = kwargs.get("model")
    if isinstance(target, str) and target != view["model"]:
        params["modelId"] = target
    for key in (*_PASSTHROUGH, "messages", "system"):
        if key in kwargs and kwargs[key] is not view.get(key):
            params[key] = kwargs[key]
        elif key not in kwargs and key in view:
            params.pop(key, None)
    body = kwargs.get("input")
    if "body" in params and body is not None and body != view.get("input"):
        params["body"] = body.encode() if isinstance(body, str) else body


class _Raw:
    """The raw stream of a served answer, as botocore reads a urllib3 response."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    def read(self, amt: int | None = None, **_: Any) -> bytes:
        return self._buffer.read() if amt is None else self._buffer.read(amt)

    def stream(self, amt: int = 65536, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self._buffer.read(amt):
            yield chunk

    def close(self) -> None:
        self._buffer.close()


class _Metering:
    __slots__ = ("_slot", "hook", "meter", "pipeline")

    def __init__(self, meter: Meter, pipeline: Pipeline, hook: ClientHook) -> None:
        self.meter = meter
        self.pipeline = pipeline
        self.hook = hook
        self._slot = threading.local()

    def before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        endpoint, stream = _OPERATIONS[model.name]
        self._slot.served = None
        view = _request_view(params)
        sent = dict(view)  # the steps may rewrite the view in place
        call = self.pipeline.start(self.hook, endpoint, view, kind="deferred" if stream else "call")
        if call.relay is not None:  # a cross-provider route: the target answers
            call.served = call.relay.run()
        _write_back(params, sent, call.kwargs)
        call.stream = stream
        self._slot.served = call.served
        context[_KEY] = (call, time.perf_counter(), self.meter.clock())

    def send(self, request: Any, **_: Any) -> Any:
        """``before-send``: the stored answer of a cache hit instead of the network."""
        served = getattr(self._slot, "served", None)
        if served is None:
            return None
        self._slot.served = None
        from botocore.awsrequest import AWSResponse

        return AWSResponse(request.url, served.status, dict(served.headers), _Raw(served.body))

    def after(
        self,
        http_response: Any,
        parsed: dict[str, Any],
        model: Any,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        started = context.pop(_KEY, None)
        context.pop(_PENDING, None)
        if started is None:
            return
        call, t0, ts = started
        try:
            status = int(getattr(http_response, "status_code", 200))
            if status >= 400:
                self._finish(
                    call, t0, ts, "error", status, None, error=f"http_{status}",
                    message=_aws_error(parsed),
                )
            elif model.name == "ConverseStream" and parsed.get("stream") is not None:
                parsed["stream"] = _WatchedStream(
                    parsed["stream"], self, call, t0, ts, keep=call.capture and not call.served
                )
                return
            elif model.name == "InvokeModelWithResponseStream" and parsed.get("body") is not None:
                parsed["body"] = _WatchedStream(parsed["body"], self, call, t0, ts)
                return
            elif model.name == "InvokeModel":
                headers = dict(getattr(http_response, "headers", {}) or {})
                usage = header_usage(headers)
                keep = call.capture and call.served is None
                if (usage is None or keep) and parsed.get("body") is not None:
                    data = _reread(parsed)
                    if usage is None:
                        usage = _usage_from_body(data)
                    if keep:
                        _keep(call, data, headers)
                self._finish(call, t0, ts, "ok", status, usage)
            else:
                raw = parsed.get("usage")
                usage = converse_usage(raw) if isinstance(raw, Mapping) else None
                if call.capture and call.served is None:
                    _keep(call, getattr(http_response, "content", None), None)
                self._finish(call, t0, ts, "ok", status, usage)
        except Exception as exc:  # metering must never break the call
            self.meter.end_call(call)
            import warnings

            from finops.errors import MeteringWarning

            warnings.warn(
                f"finops: Bedrock metering failed: {exc!r}", MeteringWarning, stacklevel=2
            )

    def received(
        self,
        context: dict[str, Any],
        exception: BaseException | None = None,
        response_dict: Mapping[str, Any] | None = None,
        parsed_response: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """``response-received``: note one attempt's outcome (a row only if it is retried)."""
        started = context.get(_KEY)
        if started is None:
            return
        try:
            elapsed = time.perf_counter() - started[1]
            if response_dict is not None:
                code = int(response_dict.get("status_code") or 0) or None
                context[_PENDING] = (code, parsed_response, None, elapsed)
            else:
                context[_PENDING] = (None, None, exception, elapsed)
        except Exception:  # metering must never break the call
            context.pop(_PENDING, None)

    def retrying(self, request: Any, **_: Any) -> None:
        """``request-created``: botocore builds an attempt. After a noted outcome this is a
        retry: the previous attempt becomes its own row and the new attempt's clock starts."""
        context = getattr(request, "context", None)
        if not isinstance(context, dict) or _PENDING not in context:
            return
        pending = context.pop(_PENDING)
        started = context.get(_KEY)
        if started is None:
            return
        call, _t0, ts = started
        try:
            code, parsed, exc, elapsed = pending
            usage: Usage | None = None
            message: str | None
            if exc is not None:
                error, message = type(exc).__name__, str(exc)
            elif code is not None and code >= 400:
                error, message = f"http_{code}", _aws_error(parsed)
            else:  # a 2xx answer botocore chose to retry: what it used is still billed
                raw = parsed.get("usage") if isinstance(parsed, Mapping) else None
                usage = converse_usage(raw) if isinstance(raw, Mapping) else None
                error, message = "retried", None
            from finops.metering.rows import UsageResult

            result = UsageResult(ts, elapsed, "error", code, usage, error=error, message=message)
            self.meter.finish_usage(call, result, end=False)
        except Exception as exc:  # metering must never break the call
            import warnings

            from finops.errors import MeteringWarning

            warnings.warn(
                f"finops: Bedrock metering failed: {exc!r}", MeteringWarning, stacklevel=2
            )
        context[_KEY] = (call, time.perf_counter(), self.meter.clock())

    def failed(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        context.pop(_PENDING, None)
        started = context.pop(_KEY, None)
        if started is None:
            return
        call, t0, ts = started
        response = getattr(exception, "response", None) or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        self._finish(
            call,
            t0,
            ts,
            "error",
            status,
            None,
            error=type(exception).__name__,
            message=str(exception),
        )

    def _finish(
        self,
        call: Call,
        t0: float,
        ts: Any,
        status: str,
        http_status: int | None,
        usage: Usage | None,
        *,
        error: str | None = None,
        message: str | None = None,
    ) -> None:
        from finops.metering.rows import UsageResult

        self.meter.finish_usage(
            call,
            UsageResult(
                ts=ts,
                elapsed=time.perf_counter() - t0,
                status=status,
                http_status=http_status,
                usage=usage,
                error=error,
                message=message,
            ),
        )


def _aws_error(parsed: Mapping[str, Any] | None) -> str | None:
    """``"ThrottlingException: Too many requests"`` from botocore's parsed error reply."""
    info = parsed.get("Error") if isinstance(parsed, Mapping) else None
    if not isinstance(info, Mapping):
        return None
    code, text = info.get("Code"), info.get("Message")
    joined = ": ".join(str(part) for part in (code, text) if part)
    return joined or None


def _keep(call: Call, data: bytes | None, headers: Mapping[str, str] | None) -> None:
    """Hand a miss's answer bytes (and the headers worth replaying) to the steps' ``after``."""
    if not isinstance(data, bytes):
        return
    call.body = data
    call.content_type = "application/json"
    if headers:
        call.response_headers = {
            k.lower(): str(v) for k, v in headers.items() if k.lower().startswith(_CACHED_HEADERS)
        }


def _reread(parsed: dict[str, Any]) -> bytes:
    """Read InvokeModel's body and hand the caller an identical ``StreamingBody``."""
    from botocore.response import StreamingBody

    data: bytes = parsed["body"].read()
    parsed["body"] = StreamingBody(io.BytesIO(data), len(data))
    return data


def _usage_from_body(data: bytes) -> Usage | None:
    """No token-count headers (a stubbed or proxied response): the usage from the model's
    own body format."""
    try:
        decoded = json.loads(data)
    except ValueError:
        return None
    return body_usage(decoded) if isinstance(decoded, Mapping) else None


class _WatchedStream:
    """The SDK's ConverseStream event stream, unchanged; its ``metadata`` event's usage
    becomes the row when the stream ends (or the partial text's estimate if it is cut)."""

    def __init__(
        self, inner: Any, metering: _Metering, call: Call, t0: float, ts: Any, *, keep: bool = False
    ) -> None:
        self._inner = inner
        self._events: list[Mapping[str, Any]] | None = [] if keep else None
        self._metering = metering
        self._call = call
        self._t0 = t0
        self._ts = ts
        self._usage: Usage | None = None
        self._done = False

    def __iter__(self) -> Iterator[Any]:
        status = "cancelled"
        try:
            for event in self._inner:
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

    def _watch(self, event: Mapping[str, Any]) -> None:
        # one dict lookup for an ordinary event (each names its one kind: contentBlockDelta...)
        if "metadata" in event:
            meta = event["metadata"]
            if isinstance(meta, Mapping) and isinstance(meta.get("usage"), Mapping):
                self._usage = converse_usage(meta["usage"])  # ConverseStream
            return
        if "chunk" not in event:
            return
        chunk = event["chunk"]  # InvokeModelWithResponseStream: the last chunk's metrics
        raw = chunk.get("bytes") if isinstance(chunk, Mapping) else None
        if isinstance(raw, bytes) and b"amazon-bedrock-invocationMetrics" in raw:
            try:
                metrics = json.loads(raw).get("amazon-bedrock-invocationMetrics")
            except (ValueError, AttributeError):
                return
            if isinstance(metrics, Mapping):
                self._usage = invocation_usage(metrics)

    def _end(self, status: str, error: str | None = None) -> None:
        if self._done:
            return
        self._done = True
        if self._events is not None and status == "ok":
            answer = assemble_converse_events(self._events)
            if answer is not None:
                _keep(self._call, json.dumps(answer, separators=(",", ":")).encode(), None)
        self._metering._finish(
            self._call,
            self._t0,
            self._ts,
            status,
            200,
            self._usage,
            error=error or ("truncated_stream" if status == "error" else None),
        )

    def close(self) -> None:
        """Close the underlying stream (the row is written as cancelled if not finished)."""
        try:
            self._inner.close()
        finally:
            self._end("cancelled")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
