"""Step: estimate a request's tokens and worst-case cost before it is sent (DESIGN.md §6).

Writes ``call.estimate`` (read by the budget and per-call cap steps, and by the meter for
cancelled streams) and the ``est_*`` fields of the call's rows. An estimate never breaks the
call: if it fails, the call goes on without one — unless a budget needs it, then a
tokenizer-free upper bound (one token per UTF-8 byte, at a top-tier reference price) is used
so a failed estimate can never open a hole in a budget.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from finops.errors import ConfigError
from finops.pipeline.call import Call, Served
from finops.pipeline.step import Step

if TYPE_CHECKING:
    from finops.pricing.book import PriceBook
    from finops.tokens.estimate import Estimate

__all__ = ["ESTIMATE_MODES", "EstimateStep", "worst_case"]

log = logging.getLogger("finops")

#: ``FinOps(estimate=...)``: ``auto`` counts exactly when the request is small enough for
#: the hot path, else takes the cheap bound; ``off`` estimates only when a budget needs it.
ESTIMATE_MODES = ("auto", "exact", "bound", "off")
_SMALL_REQUEST_CHARS = 16_000
_CONTENT_KEYS = ("messages", "input", "system", "instructions", "tools", "contents", "config")
#: Wires with an offline tokenizer; others (Gemini) get the UTF-8 byte bound.
_TOKENIZED = ("openai", "anthropic")


def check_mode(mode: str) -> str:
    """Validate ``FinOps(estimate=...)``."""
    if mode not in ESTIMATE_MODES:
        raise ConfigError(
            f"estimate={mode!r} is not a mode: use one of {', '.join(ESTIMATE_MODES)}"
        )
    return mode


class EstimateStep(Step):
    """Tokens and worst-case cost of the request, from the offline token layer."""

    name = "estimate"

    def __init__(
        self,
        *,
        mode: str,
        pricebook: Callable[[], PriceBook],
        clock: Callable[[], datetime],
        priced: bool,
        defer: bool = False,
    ) -> None:
        self.mode = check_mode(mode)
        #: nothing reads the estimate before the network (no budget): make it when the row
        #: is built, off the caller's thread, from the request body as sent (a step that
        #: needs it sooner, the per-call cap, calls :meth:`apply` itself).
        self.defer = defer
        self._pricebook = pricebook
        self._clock = clock
        #: whether the worst-case cost is needed (a budget reserves it); counting alone is
        #: cheaper, and a per-call cap prices the estimate itself when it is not.
        self.priced = priced
        self._warmed = False

    def before(self, call: Call) -> Served | None:
        """Estimate the request as it will be sent (or when its row is built)."""
        if not self.defer:
            self.apply(call)
        elif call.provider in _TOKENIZED:
            call.estimate_later = self.apply_sent
            if not self._warmed:
                self._warm(call)
        else:  # keep the request as it is now (the kwargs may change later), count later
            try:
                request = _snapshot(call.kwargs)
                counts = None if request is not None else _fallback_counts(call.kwargs)
            except Exception:
                self.apply(call)
                return None
            now = self._clock()

            def later(call: Call, body: bytes) -> None:
                try:
                    size, model, out = counts or _fallback_counts(request or {})
                    estimate = _fallback_priced(
                        self._pricebook(),
                        call.provider,
                        size,
                        model,
                        out,
                        now,
                        call.price_provider,
                    )
                except Exception as exc:  # the row is written without an estimate
                    log.warning("finops: could not estimate a %s request: %r", call.endpoint, exc)
                    estimate = None
                self._store(call, estimate)

            call.estimate_later = later
        return None

    def _warm(self, call: Call) -> None:
        """First call: load what its row will need (the model's encoding, its price table)
        in a background thread while the request is on the network. A process that makes
        no call never loads them; one whose first row is built before the load is done
        waits for it there, as it would have without the warm-up."""
        self._warmed = True
        requested = str(call.kwargs.get("model") or "")
        counted_as = requested if call.provider == "openai" else "claude"  # Anthropic: o200k
        provider = call.price_provider

        def load() -> None:
            try:
                from finops.tokens.encodings import get_encoding
                from finops.tokens.models import family_for

                get_encoding(family_for(counted_as).encoding)
                self._pricebook().resolve(model=requested, provider=provider)
            except Exception as exc:  # only a warm-up: the row's estimate reports problems
                log.debug("finops: warm-up failed: %r", exc)

        # No new threads (interpreter shutting down): the row loads them on first need.
        with contextlib.suppress(RuntimeError):
            threading.Thread(target=load, name="finops-warmup", daemon=True).start()

    def apply_sent(self, call: Call, body: bytes) -> None:
        """Estimate ``call`` from the JSON body the SDK sent (the kwargs may have changed
        since: an application appends the answer to its ``messages`` list)."""
        sent: Any = None
        if body:
            try:
                sent = json.loads(body)
            except ValueError:
                sent = None
        if isinstance(sent, Mapping):
            kwargs, call.kwargs = call.kwargs, dict(sent)
            try:
                self.apply(call)
            finally:
                call.kwargs = kwargs
        else:
            self.apply(call)

    def apply(self, call: Call) -> None:
        """(Re-)estimate ``call`` — also used after a step changed its model (downgrade)."""
        self._store(call, self.estimate(call))

    def _store(self, call: Call, estimate: Estimate | None) -> None:
        call.estimate = estimate
        row = call.row
        row["est_input_tokens"] = getattr(estimate, "input_tokens", None)
        row["est_output_tokens_max"] = getattr(estimate, "output_tokens_max", None)
        row["est_cost_max"] = getattr(estimate, "cost_max", None)
        row["est_exact"] = getattr(estimate, "exact", None)

    def estimate(self, call: Call) -> Estimate | None:
        """The estimate of ``call`` as it stands; None only when nothing needs one."""
        kwargs = call.kwargs
        if call.provider not in _TOKENIZED:
            return _fallback_estimate(
                self._pricebook(), call.provider, kwargs, self._clock(), call.price_provider
            )
        try:
            from finops.tokens.estimate import estimate_request

            mode = self.mode
            if mode in ("auto", "off"):
                mode = "exact" if _small(kwargs) else "bound"
            return estimate_request(
                provider=call.provider,
                endpoint=call.endpoint,
                body=kwargs,
                pricebook=self._pricebook() if self.priced else None,
                mode=mode,
                at=self._clock(),
            )
        except Exception as exc:  # an estimate must never break the call...
            log.warning("finops: could not estimate a %s request: %r", call.endpoint, exc)
        if not self.priced:
            return None
        # ...nor open a hole in a budget: reserve a tokenizer-free upper bound instead.
        return _fallback_estimate(self._pricebook(), call.provider, kwargs, self._clock())


def worst_case(estimate: Estimate | None) -> tuple[Decimal, int]:
    """The amount to reserve. Without an estimate, reserve nothing in USD but 1 token so
    token budgets at their limit still refuse (a call is never free of tokens)."""
    if estimate is None:
        return Decimal(0), 1
    cost = estimate.cost_max if estimate.cost_max is not None else Decimal(0)
    # input_tokens_max: the upper bound of the billed input (never below the bill on the
    # recorded calls), not the point estimate.
    return cost, int(estimate.input_tokens_max) + int(estimate.output_tokens_max)


def _small(kwargs: Mapping[str, Any]) -> bool:
    """Cheap check whether exact counting is affordable on the hot path (~0.13 ms / 1k tokens)."""
    total = 0
    for key in _CONTENT_KEYS:
        value = kwargs.get(key)
        if value is None:
            continue
        total += len(value) if isinstance(value, str) else len(repr(value))
        if total > _SMALL_REQUEST_CHARS:
            return False
    return True


#: Media the request only points at (a URL, a file id): its bytes are not in the body, so a
#: byte count cannot bound it. Each reference is reserved at a documented maximum instead:
#: an image at most 6,000 tokens (Anthropic caps an image at 1,600, OpenAI's largest tiles
#: and patch grids stay under 2,500, Gemini's under 1,300); a document at 100 pages of
#: ``PDF_PAGE_MAX`` (Anthropic's page limit; text plus the page image), or, for a PDF carried
#: inline, its pages at ``PDF_PAGE_MAX`` each (a page can cost more than its bytes).
_IMAGE_MAX_TOKENS = 6_000
_MAX_DEPTH = 64


def _unseen_media(value: Any) -> int:
    """Tokens to add for media a request references but does not carry, or whose cost its
    bytes do not bound (PDFs). One structural walk over the content parts of every wire:
    OpenAI ``image_url``/``input_image``/``file``/``input_file`` parts, Anthropic ``image``
    and ``document`` blocks (the same part types the token layer's walkers price), Gemini
    ``file_data`` parts and Bedrock ``image``/``document`` blocks."""
    from finops.tokens.anthropic import PDF_PAGE_MAX

    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            continue
        if isinstance(item, Mapping):
            extra = _media_part(item, PDF_PAGE_MAX)
            if extra is not None:
                total += extra
                continue
            stack.extend((v, depth + 1) for v in item.values() if not isinstance(v, (str, bytes)))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item if not isinstance(v, (str, bytes)))
        elif hasattr(item, "model_dump"):  # SDK types (google-genai parts)
            try:
                stack.append((item.model_dump(exclude_none=True), depth + 1))
            except Exception:  # not a pydantic model after all
                continue
    return total


def _media_part(part: Mapping[str, Any], page_max: int) -> int | None:
    """The extra bound of one media part; None when ``part`` is not one (walk into it)."""
    kind = part.get("type")
    if kind in ("image_url", "input_image"):  # OpenAI: a data: URL is in the body
        spec = part.get("image_url", part)
        url = spec.get("url") if isinstance(spec, Mapping) else spec
        inline = isinstance(url, str) and url.startswith("data:")
        return 0 if inline else _IMAGE_MAX_TOKENS
    if kind in ("file", "input_file"):  # OpenAI: pages of an inline PDF, else 100 pages
        spec = part.get("file", part)
        data = spec.get("file_data") if isinstance(spec, Mapping) else None
        return _pdf_bound(data, page_max)
    if kind == "image":  # Anthropic
        source = part.get("source")
        inline = isinstance(source, Mapping) and source.get("type") == "base64"
        return 0 if inline else _IMAGE_MAX_TOKENS
    if kind == "document":  # Anthropic
        source = part.get("source")
        source_kind = source.get("type") if isinstance(source, Mapping) else None
        if source_kind in ("text", "content"):
            return 0  # text in the body: its bytes bound it
        data = (
            source.get("data") if source_kind == "base64" and isinstance(source, Mapping) else None
        )
        return _pdf_bound(data, page_max)
    if kind is not None:
        return None
    for key in ("file_data", "fileData"):  # Gemini: a file by URI
        if isinstance(part.get(key), Mapping):
            return 100 * page_max
    image = part.get("image")  # Bedrock Converse: bytes inline, or an S3 location
    if isinstance(image, Mapping) and "source" in image:
        source = image["source"]
        inline = isinstance(source, Mapping) and "bytes" in source
        return 0 if inline else _IMAGE_MAX_TOKENS
    document = part.get("document")
    if isinstance(document, Mapping) and "source" in document:
        return 100 * page_max
    return None


def _pdf_bound(data: object, page_max: int) -> int:
    from finops.tokens.openai import pdf_pages

    pages = pdf_pages(data) if isinstance(data, str) and data else 0
    return (pages or 100) * page_max


def _fallback_estimate(
    book: PriceBook,
    wire: str,
    kwargs: Mapping[str, Any],
    now: datetime,
    provider: str | None = None,
) -> Estimate:
    """A guaranteed upper bound without the tokenizer: one token per UTF-8 byte at most,
    plus documented maxima for media the request only references (:func:`_unseen_media`)."""
    size, model, out = _fallback_counts(kwargs)
    return _fallback_priced(book, wire, size, model, out, now, provider)


#: ``json.dumps(value, default=str)`` without building an encoder on every call
_dump_any = json.JSONEncoder(default=str).encode
#: what :func:`_fallback_counts` reads from a request
_COUNTED_KEYS = (
    *_CONTENT_KEYS,
    "model",
    "max_completion_tokens",
    "max_tokens",
    "max_output_tokens",
)
_PLAIN = (str, int, float, bool, bytes, type(None))


class _NotPlain(Exception):
    """A request value that is not plain data (an SDK object): count it now."""


def _copy(value: Any, depth: int = 0) -> Any:
    if type(value) in _PLAIN:
        return value
    if depth > _MAX_DEPTH:
        raise _NotPlain
    kind = type(value)
    if kind is dict:
        return {k: _copy(v, depth + 1) for k, v in value.items()}
    if kind is list:
        return [_copy(v, depth + 1) for v in value]
    if kind is tuple:
        return tuple(_copy(v, depth + 1) for v in value)
    raise _NotPlain


def _snapshot(kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """What :func:`_fallback_counts` reads, copied so that an application changing its
    objects after the call (appending to its ``contents`` or ``messages``) does not change
    the count made later: plain dicts, lists and tuples are copied, strings and numbers are
    immutable. None when the request holds other objects (SDK types, which may be changed in
    place and are not cheap to copy): then it is counted now."""
    try:
        return {k: _copy(kwargs[k]) for k in _COUNTED_KEYS if k in kwargs}
    except _NotPlain:
        return None


def _fallback_counts(kwargs: Mapping[str, Any]) -> tuple[int, str, object]:
    """What the fallback bound reads from the request: (bytes, model, max output option)."""
    size = 64
    for key in _CONTENT_KEYS:
        if key in kwargs:
            value = kwargs[key]
            size += len(_dump_any(value).encode()) + _unseen_media(value)
    model = str(kwargs.get("model") or "")
    if model.startswith(("models/", "publishers/", "projects/")):  # Gemini resource names
        model = model.rsplit("/", 1)[-1]
    config = kwargs.get("config")  # Gemini: max_output_tokens lives in the config
    out = (
        kwargs.get("max_completion_tokens")
        or kwargs.get("max_tokens")
        or kwargs.get("max_output_tokens")
        or (
            config.get("max_output_tokens")
            if isinstance(config, Mapping)
            else getattr(config, "max_output_tokens", None)
        )
    )
    return size, model, out


def _fallback_priced(
    book: PriceBook,
    wire: str,
    size: int,
    model: str,
    out: object,
    now: datetime,
    provider: str | None,
) -> Estimate:
    from finops.tokens.estimate import Estimate
    from finops.usage import Usage

    out_max = int(out) if isinstance(out, int) else 0
    if not out_max:
        out_max = book.max_output_tokens(provider=None, model=model) or 32_768
    usage = Usage(input_tokens=size, output_tokens=out_max)
    table = provider if provider and book.has_provider(provider) else None
    if book.resolve(model=model, provider=table) is not None:
        cost = book.price(provider=table, model=model, usage=usage, at=now)
    else:
        cost = book.price(provider=None, model=model, usage=usage, at=now)
    if cost.status == "unknown_model":
        reference = "claude-opus-4-1" if wire == "anthropic" else "gpt-4o"
        cost = book.price(provider=None, model=reference, usage=usage, at=now)
    return Estimate(
        input_tokens=size,
        output_tokens_max=out_max,
        cost_max=cost.total,
        exact=False,
        error_bound=3.0,
        method="fallback:utf8-bytes",
        model=model,
        fallback=True,
    )
