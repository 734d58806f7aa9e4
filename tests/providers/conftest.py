"""Helpers for provider tests: route a real SDK's requests for any host to the DevServer."""

from __future__ import annotations

import httpx2
import pytest

from finops.devserver import DevServer


class Redirect(httpx2.BaseTransport):
    """Sends every request to the DevServer, whatever host the SDK's base_url names (the
    SDK, finops' host map and the row still see the real host name)."""

    def __init__(self, server: DevServer) -> None:
        self._port = server.port
        self._inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self._port)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class AsyncRedirect(httpx2.AsyncBaseTransport):
    """Async twin of :class:`Redirect`."""

    def __init__(self, server: DevServer) -> None:
        self._port = server.port
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self._port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture()
def redirect(devserver: DevServer) -> httpx2.Client:
    return httpx2.Client(transport=Redirect(devserver))


@pytest.fixture()
def aredirect(devserver: DevServer) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=AsyncRedirect(devserver))
