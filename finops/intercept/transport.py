"""The httpx2 transports that see every HTTP attempt the SDK makes (retries included).

Like an httpx transport, each class has one job: ``handle_request(request) -> response``.
It asks the metering hook whether the request is metered (:meth:`AttemptHook.begin`), sends
it through the real transport, and hands back a response whose byte stream is watched on the
way to the SDK. The SDK parses the bytes itself, so the caller gets exactly the SDK's own
types. Nothing here knows about prices, budgets or the ledger: when the body has been read
(or the stream ended, failed or was closed early) the watcher reports to the :class:`Attempt`.

Why the body is decoded here: the watcher must read JSON / SSE, so it consumes the decoded
bytes (``iter_bytes``) and the response handed to the SDK drops ``content-encoding``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import httpx2

from finops.pipeline.call import Served
from finops.providers.base import Parsed, StreamWatcher, watch_body

__all__ = ["AsyncMeteringTransport", "Attempt", "AttemptHook", "MeteringTransport"]

_DROP_HEADERS = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})


class Attempt(Protocol):
    """One metered HTTP attempt, as seen by the transport."""

    @property
    def served(self) -> Served | None:
        """An answer to return instead of sending the request (a cache hit), or None."""

    @property
    def capture(self) -> bool:
        """Whether the raw response bytes are wanted in :meth:`finish` (``raw=``)."""

    def watcher(self, response: httpx2.Response) -> StreamWatcher | None:
        """A stream watcher if ``response`` is an SSE stream to be watched, else None."""

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
        """Report the end of the attempt. ``outcome``: complete | closed_early | failed.

        ``raw``: the SSE bytes as received (before any event was hidden from the SDK), when
        the attempt asked to capture them.
        """


class AttemptHook(Protocol):
    """Decides whether a request is metered (and strips finops' internal header)."""

    def begin(self, request: httpx2.Request) -> Attempt | None:
        """Start metering ``request``; None passes it through untouched."""


class _Watch:
    """The byte-level work shared by the sync and async streams: a tee.

    Every body is kept as the chunks that arrived (a list append per chunk) and handed to
    the SDK unchanged; what it says (usage, model, status) is read once, at the end, from
    the whole body (:func:`finops.providers.base.watch_body`), so a streamed event costs
    nothing in Python on its way to the SDK.

    The one exception is an event finops must hide (the usage chunk it asked for and the
    application did not): the watcher names byte markers (``drop_markers``) that every
    such event contains, and decides with ``keep(event)``. While each chunk arrives as
    whole events (it ends at a blank line; the usual case, one event per chunk), a chunk
    without a marker passes as it is, and only a chunk with one is split into events for
    ``keep``. A stream whose chunks cut events (or use ``\\r`` line ends) is framed event
    by event from that chunk on, as before, so an event to hide is never half-sent.

    Such a watcher may also name fields that finops' own request made the provider add to
    every event (``unset_fields``: the ``,"usage":null`` of each chat chunk once
    ``include_usage`` is on); they are cut from the bytes the SDK sees (a C ``replace`` per
    chunk), so the SDK parses exactly the events the application's own request would have
    got: the same objects (``usage`` unset, as without ``include_usage``) for less of the
    SDK's per-chunk work.
    """

    __slots__ = (
        "_attempt", "_buffer", "_chunks", "_done", "_framing", "_keep", "_markers",
        "_response", "_unset", "_watcher",
    )

    def __init__(self, attempt: Attempt, response: httpx2.Response) -> None:
        self._attempt = attempt
        self._response = response
        self._watcher = watcher = attempt.watcher(response)
        self._chunks: list[bytes] = []
        self._keep = keep = getattr(watcher, "keep", None)
        markers = getattr(watcher, "drop_markers", ()) if keep is not None else ()
        self._markers: tuple[bytes, ...] = tuple(markers)
        unset = getattr(watcher, "unset_fields", ()) if keep is not None else ()
        self._unset: tuple[bytes, ...] = tuple(unset)
        self._framing = False  # framing every event (a stream whose chunks cut events)
        self._buffer = b""
        self._done = False

    def feed(self, chunk: bytes) -> bytes:
        self._chunks.append(chunk)
        markers = self._markers
        if not markers or not chunk:
            return chunk
        if not self._framing:
            if chunk.endswith(b"\n\n") and b"\r" not in chunk:  # whole events
                for marker in markers:
                    if marker in chunk:
                        return self._events(chunk)
                for field in self._unset:
                    if field in chunk:
                        chunk = chunk.replace(field, b"")
                return chunk
            self._framing = True  # from here on, every event is framed before it passes
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._buffer = buffer
            return b""
        complete, self._buffer = buffer[: end + 2], buffer[end + 2 :]
        return self._events(complete)

    def _events(self, complete: bytes) -> bytes:
        """Whole events, less those the watcher's ``keep`` refuses."""
        assert self._keep is not None
        kept: list[bytes] = []
        dropped = False
        decide = self._keep
        for block in complete.split(b"\n\n"):
            if not block:
                continue
            try:
                keep = decide(block)
            except Exception:  # a garbled event is the SDK's business; metering goes on
                keep = True
            if keep:
                kept.append(block)
            else:
                dropped = True
        out = complete if not dropped else b"".join(block + b"\n\n" for block in kept)
        for field in self._unset:
            if field in out:
                out = out.replace(field, b"")
        return out

    def tail(self) -> bytes:
        """Whatever is left in the buffer when the source ends (an unterminated event).

        An SSE event is dispatched only at a blank line, so the SDK drops an unterminated
        event (e.g. a stream cut mid-event). The bytes go to the SDK unchanged, never
        completed with a terminator: the wrapped client must end exactly as the raw one.
        """
        rest, self._buffer = self._buffer, b""
        return rest

    def end(self, outcome: str, error: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        watcher = self._watcher
        self._attempt.finish(
            response=self._response,
            body=body if watcher is None else None,
            watcher=_Unread(watcher, body) if watcher is not None else None,
            outcome=outcome,
            error=error,
            raw=body if watcher is not None and self._attempt.capture else None,
        )


class _Unread:
    """A stream's watcher with the stream's bytes, read when its result is first asked for.

    So the read happens where the row is built: on the caller's thread when the call is
    metered inline, on the builder thread when it is deferred. :meth:`journal_event` is the
    cheap look the caller's thread may take instead (see the chat watcher's).
    """

    __slots__ = ("_body", "_read", "watcher")

    def __init__(self, watcher: StreamWatcher, body: bytes) -> None:
        self.watcher = watcher
        self._body = body
        self._read = False

    def on_event(self, block: bytes) -> bool:
        """Never fed: the stream is over."""
        return True

    def result(self) -> Parsed:
        """What the stream said (its bytes are read the first time)."""
        if not self._read:
            self._read = True
            with contextlib.suppress(Exception):  # garbled bytes are the SDK's business
                watch_body(self.watcher, self._body)
        return self.watcher.result()

    def journal_event(self) -> bytes | None:
        """The JSON of the one event the stream's row can be rebuilt from, found without
        reading the stream (None: the watcher has no such event, or this stream is not
        that simple)."""
        find = getattr(self.watcher, "journal_event", None)
        if find is None:
            return None
        try:
            event = find(self._body)
        except Exception:  # read the stream instead
            return None
        return event if isinstance(event, bytes) else None


class _SyncStream(httpx2.SyncByteStream):
    """Passes the decoded body to the SDK while the watch looks at it.

    It may be iterated more than once (the SDKs drain ``response.stream`` after parsing SSE):
    later iterations continue from where the source is. An iteration abandoned half-way is
    not an end of the response: ``close()`` is (the SDK and httpx2 always close responses).
    """

    def __init__(self, response: httpx2.Response, watch: _Watch) -> None:
        self._response = response
        self._watch = watch
        self._source: Iterator[bytes] | None = None
        #: no ``content-encoding`` to undo: the transport's stream is read as it is
        self.identity = True

    def __iter__(self) -> Iterator[bytes]:
        if self._source is None:
            stream = self._response.stream
            if self.identity and isinstance(stream, httpx2.SyncByteStream):
                # nothing to decode: read the transport's stream itself, not through a
                # second layer of httpx2's decoder and chunker generators (per chunk)
                self._source = iter(stream)
            else:
                self._source = self._response.iter_bytes()
        try:
            for chunk in self._source:
                out = self._watch.feed(chunk)
                if out:
                    yield out
            tail = self._watch.tail()
            if tail:
                yield tail
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._watch.end("failed", exc)
            raise
        self._watch.end("complete")

    def close(self) -> None:
        try:
            self._response.close()
        finally:
            self._watch.end("closed_early")


class _AsyncStream(httpx2.AsyncByteStream):
    """Async twin of :class:`_SyncStream`."""

    def __init__(self, response: httpx2.Response, watch: _Watch) -> None:
        self._response = response
        self._watch = watch
        self._source: AsyncIterator[bytes] | None = None
        self.identity = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._source is None:
            stream = self._response.stream
            if self.identity and isinstance(stream, httpx2.AsyncByteStream):
                self._source = aiter(stream)
            else:
                self._source = self._response.aiter_bytes()
        try:
            async for chunk in self._source:
                out = self._watch.feed(chunk)
                if out:
                    yield out
            tail = self._watch.tail()
            if tail:
                yield tail
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._watch.end("failed", exc)
            raise
        self._watch.end("complete")

    async def aclose(self) -> None:
        try:
            await self._response.aclose()
        finally:
            self._watch.end("closed_early")


def _replay(served: Served, request: httpx2.Request) -> httpx2.Response:
    """The response of a request answered by a step (nothing was sent)."""
    return httpx2.Response(
        served.status,
        headers=dict(served.headers),
        stream=httpx2.ByteStream(served.body),
        request=request,
    )


def _wrap(
    response: httpx2.Response,
    attempt: Attempt,
    stream_type: type[_SyncStream] | type[_AsyncStream],
) -> httpx2.Response:
    watch = _Watch(attempt, response)
    stream = stream_type(response, watch)
    headers = []
    for key, value in response.headers.raw:  # one pass (each Headers.get is a scan)
        name = key.lower()
        if name in _DROP_HEADERS:
            if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                stream.identity = False
            continue
        headers.append((key, value))
    return httpx2.Response(
        response.status_code,
        headers=headers,
        stream=stream,
        extensions=response.extensions,
    )


class MeteringTransport(httpx2.BaseTransport):
    """Sync transport: meters each attempt, sends it through ``inner`` or ``client``.

    Exactly one of ``inner`` (a transport this object owns and closes) or ``client`` (the
    user's own configured ``httpx2.Client``, which keeps its proxies, certificates and
    limits, and which this object does not close) must be given.
    """

    def __init__(
        self,
        hook: AttemptHook,
        *,
        inner: httpx2.BaseTransport | None = None,
        client: httpx2.Client | None = None,
    ) -> None:
        if (inner is None) == (client is None):
            raise ValueError("MeteringTransport needs exactly one of inner= or client=")
        self._hook = hook
        self._inner = inner
        self._client = client

    def _send(self, request: httpx2.Request) -> httpx2.Response:
        if self._client is not None:
            return self._client.send(request, stream=True)
        assert self._inner is not None
        return self._inner.handle_request(request)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send one attempt and watch its response."""
        attempt = self._hook.begin(request)
        if attempt is None:
            return self._send(request)
        served = attempt.served
        if served is not None:
            return _wrap(_replay(served, request), attempt, _SyncStream)
        try:
            response = self._send(request)
        except BaseException as exc:
            attempt.finish(response=None, body=None, watcher=None, outcome="failed", error=exc)
            raise
        return _wrap(response, attempt, _SyncStream)

    def close(self) -> None:
        """Close the inner transport if this object owns it."""
        if self._inner is not None:
            self._inner.close()


class AsyncMeteringTransport(httpx2.AsyncBaseTransport):
    """Async twin of :class:`MeteringTransport`."""

    def __init__(
        self,
        hook: AttemptHook,
        *,
        inner: httpx2.AsyncBaseTransport | None = None,
        client: httpx2.AsyncClient | None = None,
    ) -> None:
        if (inner is None) == (client is None):
            raise ValueError("AsyncMeteringTransport needs exactly one of inner= or client=")
        self._hook = hook
        self._inner = inner
        self._client = client

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        if self._client is not None:
            return await self._client.send(request, stream=True)
        assert self._inner is not None
        return await self._inner.handle_async_request(request)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send one attempt and watch its response."""
        attempt = self._hook.begin(request)
        if attempt is None:
            return await self._send(request)
        served = attempt.served
        if served is not None:
            return _wrap(_replay(served, request), attempt, _AsyncStream)
        try:
            response = await self._send(request)
        except BaseException as exc:
            attempt.finish(response=None, body=None, watcher=None, outcome="failed", error=exc)
            raise
        return _wrap(response, attempt, _AsyncStream)

    async def aclose(self) -> None:
        """Close the inner transport if this object owns it."""
        if self._inner is not None:
            await self._inner.aclose()
