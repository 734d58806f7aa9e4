"""The response side of every call: parse → price → one ledger row → the steps' hooks.

Steps 8–11 of DESIGN.md §1, beside ``finops/intercept/`` that feeds it. Runs when an HTTP
attempt's body has been read or its stream has ended. Rule: nothing here may change what the application receives. Every failure is caught,
logged (``finops`` logger + :class:`~finops.errors.MeteringWarning`) and written on the row's
``finops_error`` column; the row itself is still written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import httpx2

from finops.context import current_tags
from finops.errors import MeteringWarning, UnknownModelWarning
from finops.intercept.calls import HEADER, CallRegistry
from finops.ledger.row import LedgerRow
from finops.metering.rows import clip, fill_cost, fill_usage, join, new_id, row_tokens
from finops.pipeline.call import Call, Served
from finops.providers import Parsed, StreamWatcher, adapter_for, classify
from finops.providers.base import INVALID as INVALID_USAGE
from finops.providers.bedrock import EVENTSTREAM, EventStreamFrames
from finops.providers.hosts import HostRoute, amend_row, price_on_host
from finops.usage import Usage

if TYPE_CHECKING:
    from finops.pricing import PriceBook, PricedCost

__all__ = ["ClientHook", "Meter", "MeteredAttempt", "RowSink"]

log = logging.getLogger("finops")


class RowSink(Protocol):
    """Where finished rows go (the ledger)."""

    def append(self, row: LedgerRow) -> None:
        """Take one row; must not block or raise."""


def approx_tokens(text: str) -> int:
    """Tokens of model output text, for estimates of cancelled or truncated streams."""
    if not text:
        return 0
    try:
        from finops.tokens import count_tokens

        return int(count_tokens(model="gpt-4o", text=text))
    except Exception:  # the tokenizer is optional here: fall back to ~4 bytes a token
        return (len(text.encode()) + 3) // 4


class Meter:
    """Turns finished attempts into priced ledger rows; owned by :class:`finops.FinOps`."""

    def __init__(
        self,
        *,
        sink: RowSink,
        pricebook: Callable[[], PriceBook],
        unknown_model: str,
        store_content: bool,
        clock: Callable[[], datetime],
        on_row: Callable[[Call, LedgerRow], None] | None = None,
        on_call_end: Callable[[Call], None] | None = None,
    ) -> None:
        self.sink = sink
        self._pricebook = pricebook
        self.unknown_model = unknown_model
        self.store_content = store_content
        self.clock = clock
        self.registry = CallRegistry()
        self._warned_models: set[str] = set()
        self._on_row = on_row
        self._on_call_end = on_call_end

    def hook(
        self,
        provider: str,
        *,
        api_url: str | None,
        price_provider: str | None,
        host: HostRoute | None = None,
    ) -> ClientHook:
        """The transport hook for one wrapped client."""
        return ClientHook(self, provider, api_url=api_url, price_provider=price_provider, host=host)

    # -- pricing -------------------------------------------------------------------------
    def price(self, ctx: Call, model: str | None, usage: Usage, at: datetime) -> PricedCost:
        """Price usage at the given time under this FinOps' unknown-model policy."""
        return price_on_host(
            self._pricebook(),
            ctx.host,
            wire_provider=ctx.price_provider,
            model=model or "",
            requested=ctx.requested_model,
            usage=usage,
            at=at,
            service_tier=ctx.service_tier,
            unknown=self.unknown_model
            if self.unknown_model != "raise"
            else "zero_flagged",  # the response already arrived: record, never raise now
        )

    def warn_unknown(self, model: str | None) -> None:
        """Warn once per model that it had no price (the row is flagged either way)."""
        key = model or "?"
        if key in self._warned_models:
            return
        self._warned_models.add(key)
        message = (
            f"finops: no price for model {key!r}; recorded at zero cost with "
            f"pricing_status='unknown_model'. Add it with FinOps(price_overrides=...) or choose "
            f"unknown_model='fallback:<model>' / 'raise'."
        )
        log.warning(message)
        warnings.warn(message, UnknownModelWarning, stacklevel=2)

    # -- rows ------------------------------------------------------------------------------
    def record(self, ctx: Call, row: LedgerRow) -> None:
        """Let the steps amend one finished attempt's row, account it, hand it to the ledger."""
        if self._on_row is not None:
            try:
                self._on_row(ctx, row)
            except Exception as exc:  # never let a step break the call
                _warn(f"a step failed on row {row.row_id}: {exc!r}")
                row.finops_error = join(row.finops_error, f"step on_row: {exc!r}")
        with ctx.lock:
            ctx.last_status = row.status
            ctx.last_http_status = row.http_status
            if row.served_model:
                ctx.served_model = row.served_model
            if row.cost_total is not None:
                ctx.spent_cost += row.cost_total
                ctx.spent_tokens += row_tokens(row)
        try:
            self.sink.append(row)
        except Exception as exc:
            _warn(f"could not write ledger row {row.row_id}: {exc!r}")

    def end_call(self, ctx: Call) -> None:
        """The call is over (all attempts done): run the steps' ``after``, forget the call."""
        with ctx.lock:
            if ctx.ended:
                return
            ctx.ended = True
        self.registry.discard(ctx.call_id)
        if self._on_call_end is not None:
            try:
                self._on_call_end(ctx)
            except Exception as exc:
                _warn(f"settling call {ctx.call_id} failed: {exc!r}")


class ClientHook:
    """The :class:`~finops.intercept.transport.AttemptHook` of one wrapped client."""

    __slots__ = ("_api_url", "_host", "_meter", "_price_provider", "_provider")

    def __init__(
        self,
        meter: Meter,
        provider: str,
        *,
        api_url: str | None,
        price_provider: str | None,
        host: HostRoute | None = None,
    ) -> None:
        self._meter = meter
        self._provider = provider
        self._api_url = api_url
        self._price_provider = price_provider
        self._host = host

    def begin(self, request: httpx2.Request) -> MeteredAttempt | None:
        """Meter generation endpoints; pass everything else (models.list, files...) through."""
        call_id = request.headers.get(HEADER)
        ctx: Call | None = None
        if call_id is not None:
            del request.headers[HEADER]
            ctx = self._meter.registry.get(call_id)
        if ctx is None:
            endpoint = classify(request.url.path)
            if endpoint is None or request.method != "POST":
                return None
            ctx = self._adhoc(endpoint, request)
            if ctx is None:
                return None
        return MeteredAttempt(self._meter, ctx, request)

    def _adhoc(self, endpoint: str, request: httpx2.Request) -> Call | None:
        """Context for a call made through an unwrapped method (SDK helpers, raw posts)."""
        try:
            body = json.loads(request.content) if request.content else {}
        except (ValueError, httpx2.RequestNotRead):
            body = {}
        if not isinstance(body, Mapping):
            body = {}
        model = body.get("model")
        return Call(
            call_id=new_id(),
            provider=self._provider,
            endpoint=endpoint,
            requested_model=model if isinstance(model, str) else None,
            stream=bool(body.get("stream")),
            tags=current_tags(),
            price_provider=self._price_provider,
            api_url=self._api_url,
            host=self._host,
            service_tier=body.get("service_tier")
            if isinstance(body.get("service_tier"), str)
            else None,
        )

    @property
    def provider(self) -> str:
        """The wire format of this client's calls: ``"openai"`` or ``"anthropic"``."""
        return self._provider

    @property
    def price_provider(self) -> str | None:
        """The price-table provider of this client's calls (None: resolved from the model)."""
        return self._price_provider

    def new_call(self, **fields: Any) -> Call:
        """A new, not yet registered call on this client (the steps run on it first)."""
        return Call(
            call_id=new_id(),
            provider=self._provider,
            price_provider=self._price_provider,
            api_url=self._api_url,
            host=self._host,
            **fields,
        )

    def register(self, call: Call) -> None:
        """Make a call known to the transport (its requests carry its id in a header)."""
        self._meter.registry.add(call)


class MeteredAttempt:
    """One HTTP attempt of a call; becomes one ledger row."""

    __slots__ = ("_body_hash", "_meter", "_t0", "_ts", "ctx", "number")

    def __init__(self, meter: Meter, ctx: Call, request: httpx2.Request) -> None:
        self._meter = meter
        self.ctx = ctx
        self.number = ctx.next_attempt()
        self._ts = meter.clock()
        self._t0 = time.perf_counter()
        try:
            content = request.content
        except httpx2.RequestNotRead:
            content = b""
        self._body_hash = hashlib.sha256(content).hexdigest() if content else None

    @property
    def served(self) -> Served | None:
        """The answer a step provided instead of the network (then nothing is sent)."""
        return self.ctx.served

    @property
    def capture(self) -> bool:
        """Whether a step asked for the raw response bytes."""
        return self.ctx.capture

    def watcher(self, response: httpx2.Response) -> StreamWatcher | None:
        """Watch SSE bodies of successful responses; JSON bodies are parsed at the end."""
        if response.status_code >= 400:
            return None
        kind = response.headers.get("content-type", "")
        binary = EVENTSTREAM in kind  # AnthropicBedrock streams: AWS event-stream frames
        if "text/event-stream" not in kind and not binary:
            return None
        adapter = adapter_for(self.ctx.provider, self.ctx.endpoint)
        if adapter is None:
            return None
        watcher = adapter.stream_watcher(strip_usage_chunk=self.ctx.strip_usage_chunk)
        return EventStreamFrames(watcher) if binary else watcher

    def finish(
        self,
        *,
        response: httpx2.Response | None,
        body: bytes | None,
        watcher: StreamWatcher | None,
        outcome: str,
        error: BaseException | None,
        raw: bytes | None = None,
    ) -> None:
        """Build, price and record the row; never raises."""
        ctx = self.ctx
        if response is not None:
            ctx.content_type = response.headers.get("content-type")
        if ctx.capture:
            ctx.body = raw if raw is not None else body
        try:
            row = self._row(response, body, watcher, outcome, error)
        except Exception as exc:  # last line of defence: a bare row still lands
            _warn(f"metering failed for call {self.ctx.call_id}: {exc!r}")
            row = self._base_row("error" if error or outcome != "complete" else "ok", response)
            row.finops_error = f"metering failed: {exc!r}"
        self._meter.record(self.ctx, row)
        # A streamed 2xx response is never retried: the call is over when its stream is.
        if watcher is not None and response is not None and response.status_code < 400:
            self._meter.end_call(self.ctx)

    # -- building the row ----------------------------------------------------------------
    def _base_row(self, status: str, response: httpx2.Response | None) -> LedgerRow:
        ctx = self.ctx
        elapsed = time.perf_counter() - self._t0
        return LedgerRow(
            row_id=new_id(),
            call_id=ctx.call_id,
            attempt=self.number,
            ts_start=self._ts,
            ts_end=self._ts + timedelta(seconds=elapsed),
            latency_ms=elapsed * 1000.0,
            provider=ctx.price_provider or ctx.provider,
            endpoint=ctx.endpoint,
            status=status,
            requested_model=ctx.requested_model,
            stream=ctx.stream,
            http_status=response.status_code if response is not None else None,
            tags=dict(ctx.tags),
            request_hash=self._body_hash,
            prompt_text=ctx.prompt_text,
        )

    def _row(
        self,
        response: httpx2.Response | None,
        body: bytes | None,
        watcher: StreamWatcher | None,
        outcome: str,
        error: BaseException | None,
    ) -> LedgerRow:
        ctx = self.ctx
        if response is None:  # connection error, timeout: nothing came back
            row = self._base_row("error", None)
            row.error_type = type(error).__name__ if error else "no_response"
            row.error_message = clip(str(error)) if error else None
            return row

        adapter = adapter_for(ctx.provider, ctx.endpoint)
        parsed: Parsed | None = None
        problem: str | None = None
        if watcher is not None:
            parsed = watcher.result()
        elif body is not None and adapter is not None and (outcome == "complete" or body):
            try:
                payload = json.loads(body) if body else None
                if not isinstance(payload, Mapping):
                    raise ValueError("body is not a JSON object")
                parsed = adapter.parse_json(payload)
            except ValueError as exc:
                problem = f"unparseable response body ({len(body)} bytes): {exc}"

        status, error_type, message = self._status(response, parsed, outcome, error, problem)
        row = self._base_row(status, response)
        row.error_type, row.error_message = error_type, message
        if status == "ok" and response.status_code < 300:
            ctx.complete = True  # a whole, successful answer (what a cache may keep)
        if parsed is None:
            row.finops_error = problem
            return row
        row.served_model = parsed.served_model
        if self._meter.store_content and parsed.output_text:
            row.response_text = parsed.output_text
        if response.status_code >= 400:
            return row

        usage = parsed.usage
        if usage is None or status == "cancelled" or not parsed.complete:
            usage = self._estimate_usage(parsed, usage)
        if usage is None:
            return row
        fill_usage(row, usage)
        if parsed.service_tier in ("flex", "priority", "batch"):
            ctx.service_tier = parsed.service_tier
        try:
            cost = self._meter.price(
                ctx, parsed.served_model or ctx.requested_model, usage, self._ts
            )
        except Exception as exc:
            row.pricing_status = "error"
            row.finops_error = join(row.finops_error, f"pricing failed: {exc}")
            _warn(f"could not price call {ctx.call_id}: {exc}")
            return row
        fill_cost(row, cost)
        amend_row(row, ctx.host, parsed, cost)
        if usage.mismatch and usage.mismatch.startswith(INVALID_USAGE):
            # counts the provider sent were not numbers in range: priced as 0, never trusted
            row.pricing_status = "invalid_usage"
        if cost.status == "unknown_model":
            self._meter.warn_unknown(parsed.served_model or ctx.requested_model)
        return row

    @staticmethod
    def _status(
        response: httpx2.Response,
        parsed: Parsed | None,
        outcome: str,
        error: BaseException | None,
        problem: str | None,
    ) -> tuple[str, str | None, str | None]:
        if response.status_code >= 400:
            message = parsed.error_message if parsed else None
            return "error", f"http_{response.status_code}", clip(message) if message else None
        if outcome == "failed":
            kind = type(error).__name__ if error else "failed"
            return "error", kind, clip(str(error)) if error else None
        if problem is not None:
            return "error", "unparseable_response", None
        if parsed is not None and parsed.complete:
            return "ok", None, None
        if outcome == "closed_early":
            return "cancelled", None, None
        return "error", "truncated_stream", "the stream ended before its final event"

    def _estimate_usage(self, parsed: Parsed, reported: Usage | None) -> Usage | None:
        """What an interrupted response used: reported counts where present, else estimates."""
        produced = approx_tokens(parsed.output_text or "")
        est_in = getattr(self.ctx.estimate, "input_tokens", None)
        if reported is not None:
            output = max(reported.total_output_tokens, produced)
            if output == reported.total_output_tokens and not reported.estimated:
                return reported
            return Usage(
                input_tokens=reported.input_tokens,
                cache_read_tokens=reported.cache_read_tokens,
                cache_write_5m_tokens=reported.cache_write_5m_tokens,
                cache_write_1h_tokens=reported.cache_write_1h_tokens,
                output_tokens=output,
                estimated=True,
            )
        if est_in is None and not produced:
            return None
        return Usage(input_tokens=int(est_in or 0), output_tokens=produced, estimated=True)


def _warn(message: str) -> None:
    log.warning("finops: %s", message)
    warnings.warn(
        f"finops: {message} (the application's call was not affected)",
        MeteringWarning,
        stacklevel=3,
    )


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)
