"""The wrapped client's own connection pool, built off the caller's thread.

``fo.wrap`` gives the metered copy of an SDK client a transport of its own (the SDK's
default client stays with the original). Building one creates an SSL context and loads the
CA bundle: ~20 ms, most of it in OpenSSL, which CPython runs without holding the GIL. So
``wrap`` starts that build in a thread (``finops-transport``) and returns; the first request
waits for it. If the thread could not build it (or did not run: a forked child), the first
request builds it itself, so an error reaches that request as the SDK's own would.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import httpx2

__all__ = ["AsyncPoolTransport", "PoolTransport"]

T = TypeVar("T")


class _Background(Generic[T]):
    """A value built once, in a background thread started now."""

    __slots__ = ("_build", "_lock", "_thread", "value")

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self.value: T | None = None
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="finops-transport", daemon=True
        )
        try:
            self._thread.start()
        except RuntimeError:  # no new threads (interpreter shutting down): build on first use
            self._thread = None

    def _run(self) -> None:
        with contextlib.suppress(BaseException):  # the first request builds it again, raising
            self.get()

    def get(self) -> T:
        """The value; waits for the background build, or builds it here if that failed."""
        value = self.value
        if value is not None:
            return value
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # In a forked child the thread is gone (not alive): build here instead.
            while thread.is_alive() and self.value is None:
                thread.join(0.05)
        with self._lock:
            if self.value is None:
                self.value = self._build()
            return self.value


class PoolTransport(httpx2.BaseTransport):
    """``httpx2.HTTPTransport(limits=limits)``, built in the background from now."""

    def __init__(self, limits: httpx2.Limits) -> None:
        self._pool = _Background(lambda: httpx2.HTTPTransport(limits=limits))

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send through the pool (waiting for it on the first request)."""
        pool = self._pool.value or self._pool.get()
        return pool.handle_request(request)

    def close(self) -> None:
        """Close the pool."""
        self._pool.get().close()


class AsyncPoolTransport(httpx2.AsyncBaseTransport):
    """``httpx2.AsyncHTTPTransport(limits=limits)``, built in the background from now."""

    def __init__(self, limits: httpx2.Limits) -> None:
        self._pool = _Background(lambda: httpx2.AsyncHTTPTransport(limits=limits))

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send through the pool (the first request may wait ~20 ms for it to be built)."""
        pool = self._pool.value or self._pool.get()
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the pool."""
        await self._pool.get().aclose()
