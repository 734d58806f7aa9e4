"""The response side of every call: parse → price → one ledger row → the steps' hooks.

Steps 8–11 of DESIGN.md §1, beside ``finops/intercept/`` that feeds it. Runs when an HTTP
attempt's body has been read or its stream has ended. Rule: nothing here may change what the application receives. Every failure is caught,
logged (``finops`` logger + :class:`~finops.errors.MeteringWarning`) and written on the row's
``finops_error`` column; the row itself is still written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx2

from finops.context import current_tags
from finops.errors import MeteringWarning, UnknownModelWarning
from finops.intercept.calls import HEADER, SENDING, CallRegistry
from finops.ledger.row import LedgerRow
from finops.metering.rows import (
    UsageResult,
    clip,
    fill_cost,
    fill_usage,
    join,
    new_id,
    row_tokens,
)
from finops.pipeline.call import Call, Served
from finops.providers import Parsed, StreamWatcher, adapter_for, classify
from finops.providers.base import INVALID as INVALID_USAGE
from finops.providers.base import watch_body
from finops.providers.bedrock import EVENTSTREAM, EventStreamFrames
from finops.providers.hosts import HostMap, HostRoute, amend_row, price_on_host, route_for
from finops.usage import TOKEN_FIELDS, StepUsage, Usage

if TYPE_CHECKING:
    from finops.metering.deferred import Deferred
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
        #: the pending journal and builder thread (None: every row is built on the
        #: caller's thread); set by :meth:`defer`.
        self.deferred: Deferred | None = None
        self.hosts: HostMap | None = None  # for rebuilding rows from a dead process's journal
        # (price provider, requested model) pairs already metered on the caller's thread:
        # their later calls may be deferred (a first call warns about an unknown model in
        # the caller's thread, as it always did).
        self._seen: set[tuple[str | None, str | None, str]] = set()

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

    # -- deferral --------------------------------------------------------------------------
    def defer(self, directory: Path, *, replay_now: bool = True) -> Deferred:
        """Build rows off the caller's thread from now on (see :mod:`finops.metering.deferred`).

        Only for a pipeline with no ``after`` steps (a budget settle or a cache store reads
        the priced rows when the call returns); ``on_row`` hooks run on the builder thread,
        on the row being built. ``directory``: the pending journal (inside the ledger's
        spool directory). With ``replay_now``, journals left by dead processes are replayed
        before this returns.
        """
        from finops.metering.deferred import Deferred

        deferred = Deferred(directory, replay=self._replay_lines)
        if replay_now:
            try:
                if deferred.replay_orphans():
                    replay = getattr(self.sink, "replay_orphans", None)
                    if replay is not None:
                        replay()
            except Exception as exc:  # retried by the builder's periodic scan
                log.warning("finops: cannot replay pending journals yet: %r", exc)
        self.deferred = deferred
        return deferred

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until the rows of every call returned so far have been handed to the sink."""
        deferred = self.deferred
        return True if deferred is None else deferred.drain(timeout_s)

    def close(self) -> None:
        """Build the pending rows and stop the builder thread; later rows are built inline."""
        deferred = self.deferred
        if deferred is not None:
            deferred.close()

    def _replay_lines(self, lines: list[bytes]) -> None:
        """Rows of a dead process's pending records, handed to the ledger's idempotent replay."""
        from finops.metering.deferred import decode_record

        rows = []
        for line in lines:
            record = decode_record(line)
            if record is None:
                continue  # a torn last line: its call had not returned
            try:
                rows.append(_rebuild(self, record))
            except Exception as exc:
                log.error("finops: cannot rebuild a pending record: %r", exc)
        if rows:
            adopt = getattr(self.sink, "adopt", None)
            if adopt is None:
                for row in rows:
                    self.sink.append(row)
            else:
                adopt(rows)

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
        if ctx.silent:  # relayed: the target client's call records the row
            return
        try:
            self.sink.append(row)
        except Exception as exc:
            _warn(f"could not write ledger row {row.row_id}: {exc!r}")

    def finish_usage(self, call: Call, result: UsageResult, *, end: bool = True) -> None:
        """Record one attempt whose usage the caller already read (boto3's Bedrock events),
        off the caller's thread when possible, then end the call (``end=False``: an attempt
        that will be retried, recorded now; the call goes on)."""
        key = (call.price_provider, call.requested_model, call.endpoint)
        attempt = call.next_attempt()
        row_id = new_id()
        if not end:
            self._usage_row_now(call, row_id, attempt, result)
            return
        deferred = self.deferred
        usage = result.usage
        if (
            deferred is not None
            and result.status == "ok"
            and usage is not None
            and key in self._seen
        ):
            try:
                line: bytes | None = _dumps(
                    [
                        2, row_id, call.call_id, attempt, _epoch_us(result.ts), result.elapsed,
                        call.provider, call.price_provider, call.endpoint, call.requested_model,
                        call.stream, result.http_status, result.status, result.error,
                        result.message,
                        call.tags if type(call.tags) is dict else dict(call.tags),
                        _row_fields(call.row), call.service_tier, call.api_url,
                        call.prompt_text, _usage_dict(usage),
                    ]
                ).encode() + b"\n"
            except Exception:
                line = None
            job = functools.partial(self._usage_row_now, call, row_id, attempt, result)
            if line is not None and deferred.submit(line, job):
                self.end_call(call)
                return
        self._usage_row_now(call, row_id, attempt, result)
        self._seen.add(key)
        self.end_call(call)

    def _usage_row_now(
        self, call: Call, row_id: str, attempt: int, result: UsageResult
    ) -> None:
        try:
            if call.estimate is None and call.estimate_later is not None:
                call.estimate_later(call, b"")
        except Exception as exc:
            _warn(f"estimating call {call.call_id} failed: {exc!r}")
        self.record(call, _usage_row(self, call, row_id, attempt, result))

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
        else:
            sending = SENDING.get()
            if sending is not None and sending[0] is self:  # this client's method sends it
                ctx = sending[1]
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

    __slots__ = ("_body_hash", "_content", "_ctype", "_meter", "_t0", "_ts", "ctx", "number")

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
        self._content = content
        self._ctype: str | bool | None = False  # the response's content-type, once read
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
        self._ctype = ctype = response.headers.get("content-type")
        if response.status_code >= 400:
            return None
        kind = ctype or ""
        binary = EVENTSTREAM in kind  # AnthropicBedrock streams: AWS event-stream frames
        if "text/event-stream" not in kind and not binary:
            return None
        adapter = adapter_for(self.ctx.provider, self.ctx.endpoint)
        if adapter is None:
            return None
        watcher = adapter.stream_watcher(strip_usage_chunk=self.ctx.strip_usage_chunk)
        if self._meter.store_content and hasattr(watcher, "want_text"):
            watcher.want_text = True  # the row keeps the answer's text
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
        """Build, price and record the row (now, or on the builder thread); never raises."""
        elapsed = time.perf_counter() - self._t0
        ctx = self.ctx
        if response is not None:
            ctype = self._ctype
            ctx.content_type = (
                ctype if ctype is not False else response.headers.get("content-type")  # type: ignore[assignment]
            )
        if ctx.capture:
            ctx.body = raw if raw is not None else body
        meter = self._meter
        deferred = meter.deferred
        streamed = watcher is not None and response is not None and response.status_code < 400
        key = (ctx.price_provider, ctx.requested_model, ctx.endpoint)
        if (
            deferred is not None
            and response is not None
            and response.status_code < 400
            and key in meter._seen
        ):
            row_id = new_id()
            # A stream whose row can be rebuilt from one event (the chat usage chunk) is
            # journaled with that event's JSON as it arrived, and read on the builder
            # thread; anything else is parsed now and journaled parsed.
            journal = getattr(watcher, "journal_event", None)
            event: bytes | None = (
                journal() if journal is not None and outcome != "failed" and not meter.store_content else None
            )
            later: StreamWatcher | None
            if event is not None:
                line = self._event_line(row_id, response, event, outcome, elapsed)
                later = watcher
            else:
                parsed = watcher.result() if watcher is not None else self._parse_body(body)
                later = _Fixed(parsed) if parsed is not None else None
                line = (
                    self._pending_line(row_id, response, later, outcome, error, elapsed)
                    if later is not None
                    else None
                )
            if line is not None and deferred.submit(
                line,
                functools.partial(
                    self._build_and_record, row_id, response, None, later, outcome, error,
                    elapsed,
                ),
            ):
                if streamed:  # a streamed 2xx response is never retried: the call is over
                    meter.end_call(ctx)
                return
        self._build_and_record(new_id(), response, body, watcher, outcome, error, elapsed)
        meter._seen.add(key)
        if streamed:  # a streamed 2xx response is never retried: the call is over
            meter.end_call(ctx)

    def _build_and_record(
        self,
        row_id: str,
        response: httpx2.Response | None,
        body: bytes | None,
        watcher: StreamWatcher | None,
        outcome: str,
        error: BaseException | None,
        elapsed: float,
    ) -> None:
        ctx = self.ctx
        try:
            if ctx.estimate is None and ctx.estimate_later is not None:
                ctx.estimate_later(ctx, self._content)
            row = self._row(row_id, response, body, watcher, outcome, error, elapsed)
        except Exception as exc:  # last line of defence: a bare row still lands
            _warn(f"metering failed for call {self.ctx.call_id}: {exc!r}")
            row = self._base_row(
                row_id, "error" if error or outcome != "complete" else "ok", response, elapsed
            )
            row.finops_error = f"metering failed: {exc!r}"
        self._meter.record(self.ctx, row)

    def _parse_body(self, body: bytes | None) -> Parsed | None:
        """A JSON body parsed as :meth:`_row` would (None: not parseable, meter it now)."""
        adapter = adapter_for(self.ctx.provider, self.ctx.endpoint)
        if adapter is None or not body:
            return None
        try:
            payload = json.loads(body)
            return adapter.parse_json(payload) if isinstance(payload, Mapping) else None
        except Exception:  # the row built now says what was wrong with the body
            return None

    def _pending_line(
        self,
        row_id: str,
        response: httpx2.Response,
        fixed: _Fixed,
        outcome: str,
        error: BaseException | None,
        elapsed: float,
    ) -> bytes | None:
        """The durable record the row can be rebuilt from (None: meter it now instead).

        It holds the parsed usage, ids, times, status and tags: no request content, no
        response text (only with ``store_content``, as on the row), no headers. A response
        without usage, or a stream that did not reach its final event (its output is then
        estimated from the text), is metered now instead.
        """
        try:
            parsed = fixed.parsed
            if parsed.usage is None or not parsed.complete or outcome == "failed":
                return None
            record = self._record(row_id, response, outcome, error, elapsed, "parsed")
            record.append(_parsed_dict(parsed, self._meter.store_content))
            return _dumps(record).encode() + b"\n"
        except Exception as exc:  # anything not plain JSON (a step's own field): meter it now
            log.debug("finops: no pending record: %r", exc)
            return None

    def _event_line(
        self, row_id: str, response: httpx2.Response, event: bytes, outcome: str, elapsed: float
    ) -> bytes | None:
        """A pending record whose payload is a stream's one telling event (a JSON object
        already parsed once, with no text in it), spliced in as it arrived: nothing is
        parsed or re-encoded for it on the caller's thread."""
        try:
            head = _dumps(self._record(row_id, response, outcome, None, elapsed, "event"))
            return b"%s,%s]\n" % (head[:-1].encode(), event)
        except Exception as exc:  # anything not plain JSON (a step's own field): meter it now
            log.debug("finops: no pending record: %r", exc)
            return None

    def _record(
        self,
        row_id: str,
        response: httpx2.Response,
        outcome: str,
        error: BaseException | None,
        elapsed: float,
        kind: str,
    ) -> list[Any]:
        """A pending record's fields, less its last one (the payload of ``kind``)."""
        ctx = self.ctx
        tags = ctx.tags if type(ctx.tags) is dict else dict(ctx.tags)
        return [
            1, row_id, ctx.call_id, self.number, _epoch_us(self._ts), elapsed, ctx.provider,
            ctx.price_provider, ctx.endpoint, ctx.requested_model, ctx.stream,
            response.status_code, ctx.content_type, outcome,
            type(error).__name__ if error is not None else None,
            clip(str(error)) if error is not None else None,
            tags, self._body_hash, _row_fields(ctx.row), ctx.service_tier, ctx.api_url,
            ctx.prompt_text, kind,
        ]

    # -- building the row ----------------------------------------------------------------
    def _base_row(
        self, row_id: str, status: str, response: httpx2.Response | None, elapsed: float
    ) -> LedgerRow:
        ctx = self.ctx
        return LedgerRow(
            row_id=row_id,
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
        row_id: str,
        response: httpx2.Response | None,
        body: bytes | None,
        watcher: StreamWatcher | None,
        outcome: str,
        error: BaseException | None,
        elapsed: float,
    ) -> LedgerRow:
        ctx = self.ctx
        if response is None:  # connection error, timeout: nothing came back
            row = self._base_row(row_id, "error", None, elapsed)
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
        row = self._base_row(row_id, status, response, elapsed)
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
        if ctx.silent:  # relayed: priced on the target's own row, not in the caller's table
            return row
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


class _Fixed:
    """A stream watcher's result, taken once on the caller's thread (or from a journal)."""

    __slots__ = ("parsed",)

    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed

    def on_event(self, block: bytes) -> bool:
        """Never fed: the stream is over."""
        return True

    def result(self) -> Parsed:
        """The parsed stream."""
        return self.parsed


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode


def _decimal_fields() -> frozenset[str]:
    from finops.ledger.migrations import COLUMN_TYPES

    return frozenset(n for n, kind in COLUMN_TYPES.items() if kind.startswith("DECIMAL"))


_DECIMALS = _decimal_fields()


def _row_fields(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """The steps' row fields as JSON values (Decimal as text; anything else must be JSON)."""
    if not fields:
        return None
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in fields.items()}


def _usage_dict(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {f: getattr(usage, f) for f in TOKEN_FIELDS}
    if usage.server_tool_requests:
        out["server_tool_requests"] = dict(usage.server_tool_requests)
    if usage.steps:
        out["steps"] = [[s.model, s.kind, _usage_dict(s.usage)] for s in usage.steps]
    if usage.mismatch is not None:
        out["mismatch"] = usage.mismatch
    if usage.estimated:
        out["estimated"] = True
    return out


def _usage_from(data: Mapping[str, Any]) -> Usage:
    return Usage(
        **{f: int(data.get(f, 0)) for f in TOKEN_FIELDS},
        server_tool_requests=dict(data.get("server_tool_requests") or {}),
        steps=tuple(
            StepUsage(model=m, kind=k, usage=_usage_from(u)) for m, k, u in data.get("steps", ())
        ),
        mismatch=data.get("mismatch"),
        estimated=bool(data.get("estimated", False)),
    )


def _parsed_dict(parsed: Parsed, store_content: bool) -> dict[str, Any]:
    return {
        "usage": _usage_dict(parsed.usage) if parsed.usage is not None else None,
        "served_model": parsed.served_model,
        "service_tier": parsed.service_tier,
        "output_text": parsed.output_text if store_content else None,
        "error_message": parsed.error_message,
        "complete": parsed.complete,
        "host_cost": str(parsed.host_cost) if parsed.host_cost is not None else None,
        "host_cost_detail": parsed.host_cost_detail,
        "notes": list(parsed.notes),
    }


def _parsed_from(data: Mapping[str, Any]) -> Parsed:
    usage = data.get("usage")
    host_cost = data.get("host_cost")
    return Parsed(
        usage=_usage_from(usage) if usage is not None else None,
        served_model=data.get("served_model"),
        service_tier=data.get("service_tier"),
        output_text=data.get("output_text"),
        error_message=data.get("error_message"),
        complete=bool(data.get("complete", True)),
        host_cost=Decimal(host_cost) if host_cost is not None else None,
        host_cost_detail=data.get("host_cost_detail"),
        notes=list(data.get("notes") or ()),
    )


def _epoch_us(ts: datetime) -> int | None:
    return (ts - _EPOCH) // _MICROSECOND if ts.tzinfo is not None else None


def _usage_row(
    meter: Meter, call: Call, row_id: str, attempt: int, result: UsageResult
) -> LedgerRow:
    """The row of an attempt whose usage was read by the caller (Bedrock through boto3)."""
    ts, status, usage, message = result.ts, result.status, result.usage, result.message
    row = LedgerRow(
        row_id=row_id,
        call_id=call.call_id,
        attempt=attempt,
        ts_start=ts,
        ts_end=ts + timedelta(seconds=result.elapsed),
        latency_ms=result.elapsed * 1000.0,
        provider=call.price_provider or call.provider,
        endpoint=call.endpoint,
        status=status,
        requested_model=call.requested_model,
        served_model=call.requested_model,
        stream=call.stream,
        http_status=result.http_status,
        error_type=result.error,
        error_message=message[:500] if message else None,
        tags=dict(call.tags),
        prompt_text=call.prompt_text,
    )
    if usage is None and status in ("ok", "cancelled"):
        est = getattr(call.estimate, "input_tokens", None)
        if est is not None:
            usage = Usage(input_tokens=int(est), estimated=True)
    if usage is not None:
        fill_usage(row, usage)
        cost = meter.price(call, call.requested_model, usage, ts)
        fill_cost(row, cost)
        amend_row(row, call.host, Parsed(usage=usage), cost)
        if usage.mismatch and usage.mismatch.startswith(INVALID_USAGE):
            row.pricing_status = "invalid_usage"  # counts were not numbers: never trusted
        if cost.status == "unknown_model":
            meter.warn_unknown(call.requested_model)
    call.complete = status == "ok"
    return row


def _rebuild_usage(meter: Meter, record: list[Any]) -> LedgerRow:
    (
        _v, row_id, call_id, attempt, ts_us, elapsed, provider, price_provider, endpoint,
        requested, stream, http_status, status, error, message, tags, row_fields,
        service_tier, api_url, prompt_text, usage,
    ) = record[:21]
    call = Call(
        call_id=call_id,
        provider=provider,
        endpoint=endpoint,
        requested_model=requested,
        stream=bool(stream),
        tags=dict(tags or {}),
        price_provider=price_provider,
        api_url=api_url,
        host=route_for(meter.hosts, provider, api_url) if api_url else None,
        service_tier=service_tier,
        prompt_text=prompt_text,
    )
    ts = _EPOCH + timedelta(microseconds=int(ts_us)) if ts_us is not None else meter.clock()
    result = UsageResult(
        ts=ts,
        elapsed=float(elapsed),
        status=status,
        http_status=http_status,
        usage=_usage_from(usage),
        error=error,
        message=message,
    )
    row = _usage_row(meter, call, row_id, int(attempt), result)
    for name, value in (row_fields or {}).items():
        setattr(row, name, Decimal(value) if name in _DECIMALS and value is not None else value)
    return row


def _rebuild(meter: Meter, record: list[Any]) -> LedgerRow:
    """The row of a pending record a dead process left (see :meth:`Meter.defer`)."""
    if record[0] == 2:
        return _rebuild_usage(meter, record)
    (
        _v, row_id, call_id, number, ts_us, elapsed, provider, price_provider, endpoint,
        requested, stream, http_status, content_type, outcome, error_type, error_text, tags,
        body_hash, row_fields, service_tier, api_url, prompt_text, kind, payload,
    ) = record[:24]
    host = route_for(meter.hosts, provider, api_url) if api_url else None
    ctx = Call(
        call_id=call_id,
        provider=provider,
        endpoint=endpoint,
        requested_model=requested,
        stream=bool(stream),
        tags=dict(tags or {}),
        price_provider=price_provider,
        api_url=api_url,
        host=host,
        service_tier=service_tier,
        prompt_text=prompt_text,
    )
    for name, value in (row_fields or {}).items():
        ctx.row[name] = Decimal(value) if name in _DECIMALS and value is not None else value
    ctx.content_type = content_type
    attempt = MeteredAttempt.__new__(MeteredAttempt)
    attempt._meter = meter
    attempt.ctx = ctx
    attempt.number = int(number)
    attempt._ts = _EPOCH + timedelta(microseconds=int(ts_us)) if ts_us is not None else meter.clock()
    attempt._t0 = 0.0
    attempt._content = b""
    attempt._body_hash = body_hash
    response = httpx2.Response(
        int(http_status), headers={"content-type": content_type} if content_type else None
    )
    error = _Replayed(error_text) if error_type else None
    if kind == "event":  # a stream's one telling event, as it arrived (see finish)
        adapter = adapter_for(provider, endpoint)
        if adapter is None:
            raise ValueError(f"no stream reader for {provider} {endpoint}")
        reader = adapter.stream_watcher(strip_usage_chunk=False)
        watch_body(reader, b"data: %s\n\ndata: [DONE]\n\n" % _dumps(payload).encode())
        watcher = _Fixed(reader.result())
    else:  # "parsed": what the response said, parsed on the caller's thread
        watcher = _Fixed(_parsed_from(payload))
    row = attempt._row(row_id, response, None, watcher, outcome, error, float(elapsed))
    if error is not None:
        row.error_type = error_type if row.error_type == "_Replayed" else row.error_type
    for name, value in ctx.row.items():
        setattr(row, name, value)
    return row


class _Replayed(Exception):
    """An attempt's error, as recorded in a pending record."""


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
