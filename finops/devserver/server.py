"""The HTTP layer: a threading HTTP/1.1 server, fault playing, the request log, ``DevServer``."""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from finops.devserver import _anthropic, _bedrock, _gemini, _openai
from finops.devserver._reply import Reply, anthropic_error, dumps, openai_error
from finops.devserver._synth import PrefixCache
from finops.devserver.faults import Fault

__all__ = ["DevServer", "RecordedRequest", "serve_forever"]

# Never keep credentials in the log, not even in memory.
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"}
)
_GARBAGE = b"<html><body>502 Bad Gateway (upstream returned garbage)</body></html>"
_ERROR_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}

_Endpoint = Callable[[Mapping[str, Any], PrefixCache, "dict[str, Any] | None"], Reply]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received. ``headers`` are lower-cased, credentials left out;
    ``client_port`` tells connections apart (keep-alive reuse)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    time: float
    client_port: int = 0


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    usages: deque[dict[str, Any]] = field(default_factory=deque)
    cache: PrefixCache = field(default_factory=PrefixCache)
    log_requests: bool = True
    ids: itertools.count[int] = field(default_factory=itertools.count)
    epoch: int = 0  # bumped by reset(): a request from before it takes no queued usage


def _route(path: str) -> tuple[_Endpoint | None, bool]:
    """(endpoint, speaks Anthropic) for a POST path."""
    if _bedrock.handles(path):
        return (lambda body, cache, usage: _bedrock.reply(path, body, usage)), False
    if path.endswith((":rawPredict", ":streamRawPredict")):  # Claude on Vertex AI
        model = path.rsplit("/", 1)[-1].split(":")[0]
        return (
            lambda body, cache, usage: _anthropic.messages({**body, "model": model}, cache, usage)
        ), True
    if _gemini.handles(path):
        return (lambda body, cache, usage: _gemini.reply(path, body, usage)), False
    if path.endswith("/chat/completions"):
        return _openai.chat, False
    if path.endswith("/responses"):
        return _openai.responses, False
    if path.endswith("/embeddings"):
        return (lambda body, cache, usage: _openai.embeddings(body, usage)), False
    if path.endswith("/messages"):
        return _anthropic.messages, True
    if path.endswith("/messages/count_tokens"):
        return (lambda body, cache, usage: _anthropic.count_tokens(body)), True
    return None, False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDKs reuse connections
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK add ~40 ms to every reply.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a log line per request would distort latency measurements."""

    # -- writing ---------------------------------------------------------------------------

    def _head(self, status: int, content_type: str, extra: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        rid = f"req_{next(self.server.state.ids):012x}"
        self.send_header("x-request-id", rid)  # OpenAI's name
        self.send_header("request-id", rid)  # Anthropic's name
        for k, v in extra.items():
            self.send_header(k, v)

    def _write_json(self, reply: Reply, fault: Fault | None) -> None:
        data = dumps(reply.body)
        self._head(reply.status, "application/json", reply.headers)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if fault is not None and fault.kind == "drop_stream":
            self.wfile.write(data[: len(data) // 2])
            self._cut()
            return
        self.wfile.write(data)

    def _write_sse(
        self, events: list[bytes], fault: Fault | None, headers: Mapping[str, str] | None = None
    ) -> None:
        extra = dict(headers or {})
        kind = extra.pop("content-type", "text/event-stream; charset=utf-8")
        self._head(200, kind, {"cache-control": "no-cache", **extra})
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        cut = fault is not None and fault.kind == "drop_stream"
        if fault is not None and fault.kind in ("drop_stream", "truncated_sse"):
            events = events[: fault.after]
        delay = fault.per_event if fault is not None else 0.0
        # One chunk (one write) per event, as a provider flushes each token: a client that
        # stops reading early really has not received the rest.
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            if delay:
                time.sleep(delay)
        if cut:
            self._cut()
            return
        self.wfile.write(b"0\r\n\r\n")

    def _cut(self) -> None:
        """Close the connection mid-body: the client sees an incomplete message."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- requests --------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        self._record("GET", None)
        if path.endswith("/models"):
            self._write_json(_openai.models(), None)
        else:
            self._write_json(openai_error(404, f"no route GET {path}", "not_found_error"), None)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0].rstrip("/")
        endpoint, is_anthropic = _route(path)
        error = anthropic_error if is_anthropic else openai_error
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        state = self.server.state
        header_fault = self.headers.get("x-finops-fault")
        fault: Fault | None = None
        with state.lock:
            epoch = state.epoch
            self._record_locked("POST", body)
            # A header fault is for this request only: it leaves the queue alone.
            if not header_fault and endpoint is not None and state.faults:
                fault = state.faults.popleft()
        if header_fault:
            try:
                fault = Fault.from_header(header_fault)
            except ValueError as exc:
                self._write_json(error(400, str(exc), "invalid_request_error"), None)
                return
        if endpoint is None:
            self._write_json(error(404, f"no route POST {path}", "not_found_error"), None)
            return
        if not isinstance(body, dict):
            self._write_json(
                error(400, "the body must be a JSON object", "invalid_request_error"), None
            )
            return
        if fault is not None:
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "status":
                self._write_json(
                    self._status_reply(fault, is_anthropic, bedrock=_bedrock.handles(path)), None
                )
                return
            elif fault.kind == "garbage":
                self._head(200, "application/json", {})
                self.send_header("content-length", str(len(_GARBAGE)))
                self.end_headers()
                self.wfile.write(_GARBAGE)
                return
        with state.lock:
            # Taken only by a reply that carries usage, so a 429 before it does not eat it;
            # and never by a request that arrived before a reset() (a slow reply a test's
            # client gave up on must not take the next test's usage).
            fresh = epoch == state.epoch
            override = state.usages.popleft() if fresh and state.usages else None
        reply = endpoint(body, state.cache, override)
        if reply.events is not None:
            self._write_sse(reply.events, fault, reply.headers)
        else:
            self._write_json(reply, fault)

    def _record(self, method: str, body: Any) -> None:
        with self.server.state.lock:
            self._record_locked(method, body)

    def _record_locked(self, method: str, body: Any) -> None:
        state = self.server.state
        if state.log_requests:
            headers = {
                k.lower(): v
                for k, v in self.headers.items()
                if k.lower() not in _CREDENTIAL_HEADERS
            }
            port = int(self.client_address[1]) if len(self.client_address) > 1 else 0
            state.requests.append(
                RecordedRequest(method, self.path, headers, body, time.time(), port)
            )

    @staticmethod
    def _status_reply(fault: Fault, is_anthropic: bool, *, bedrock: bool = False) -> Reply:
        code = fault.status_code
        kind = _ERROR_KINDS.get(code, "api_error")
        message = f"injected fault: HTTP {code}"
        if bedrock:  # AWS's shape: 429 is a ThrottlingException, which botocore retries
            reply = _bedrock.error(code, message)
        elif is_anthropic:
            reply = anthropic_error(code, message, kind)
        else:
            reply = openai_error(code, message, kind)
        if fault.retry_after is not None:
            reply.headers["retry-after"] = f"{fault.retry_after:g}"
        if fault.retry_after_ms is not None:
            reply.headers["retry-after-ms"] = f"{fault.retry_after_ms:g}"
        return reply


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # many client processes may connect at once

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        self.state = state
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-reply (cancelled streams) are normal here: stay quiet."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class DevServer:
    """The local provider server. ``with DevServer() as server:`` or ``start()`` / ``stop()``.

    It binds its socket on construction (``port=0``: a free port), so ``url`` is known before
    ``start()``. All methods are thread-safe.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, log_requests: bool = True
    ) -> None:
        self._state = _State(log_requests=log_requests)
        self._server = _Server((host, port), self._state)
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI`` (``.../v1``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for ``anthropic.Anthropic`` (the root)."""
        return self.url

    # -- scripting -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def inject(self, fault: Fault, *, times: int = 1) -> None:
        """Play ``fault`` on each of the next ``times`` POST requests (queued after earlier
        faults). Requests that carry an ``x-finops-fault`` header do not take from the queue."""
        with self._state.lock:
            self._state.faults.extend([fault] * times)

    def next_usage(self, usage: Mapping[str, Any], *, times: int = 1) -> None:
        """Make the next ``times`` successful replies carry exactly this provider-format
        ``usage`` object (in streams: in the final usage event, and in ``message_start``
        and ``message_delta`` for Anthropic)."""
        with self._state.lock:
            self._state.usages.extend(dict(usage) for _ in range(times))

    def reset(self) -> None:
        """Forget requests, pending faults and usages, and the prompt cache."""
        with self._state.lock:
            self._state.requests.clear()
            self._state.faults.clear()
            self._state.usages.clear()
            self._state.epoch += 1
        self._state.cache.clear()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DevServer:
        """Serve in a background daemon thread; returns ``self``."""
        if self._closed:
            raise RuntimeError("this DevServer was stopped; make a new one")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="finops-devserver",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        if not self._closed:
            self._server.server_close()
            self._closed = True

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted, then close."""
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()
            self._closed = True

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"DevServer({self.url})"


def serve_forever(*, host: str = "127.0.0.1", port: int = 8765, log_requests: bool = False) -> None:
    """Run the server in the foreground until interrupted (``finops serve-fake``).

    The request log is off by default: a long-running server would grow it without end.
    """
    DevServer(host=host, port=port, log_requests=log_requests).serve_forever()
