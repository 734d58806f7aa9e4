"""The server itself: request log, lifecycle, concurrency, determinism, plain HTTP errors."""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx2
import openai
import pytest

from finops.devserver import DevServer, RecordedRequest
from finops_testing import free_port

MSG = [{"role": "user", "content": "hello"}]


def test_request_log_without_credentials(
    oai: openai.OpenAI, claude: anthropic.Anthropic, devserver: DevServer
):
    before = time.time()
    oai.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-team": "a"})  # type: ignore[arg-type]
    claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=MSG)  # type: ignore[arg-type]
    first, second = devserver.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.body == {"model": "gpt-4o", "messages": MSG}
    assert first.headers["x-team"] == "a" and "authorization" not in first.headers
    assert second.path == "/v1/messages" and second.body["max_tokens"] == 8
    assert "x-api-key" not in second.headers and "anthropic-version" in second.headers
    assert before <= first.time <= second.time <= time.time()
    assert all("test" not in v for r in (first, second) for v in r.headers.values())
    devserver.reset()
    assert devserver.requests == []


def test_log_is_a_copy(devserver: DevServer, oai: openai.OpenAI):
    log = devserver.requests
    oai.chat.completions.create(model="gpt-4o", messages=MSG)  # type: ignore[arg-type]
    assert log == [] and len(devserver.requests) == 1


def test_concurrent_threads(devserver: DevServer):
    client = openai.OpenAI(api_key="test", base_url=devserver.openai_base_url, max_retries=0)

    def call(i: int) -> str:
        reply = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"q{i % 5}"}]
        )
        return reply.choices[0].message.content or ""

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, range(160)))
    assert len(devserver.requests) == 160
    # Same question, same answer, whatever thread asked.
    assert all(answers[i] == answers[i % 5] for i in range(160))


_CHILD = textwrap.dedent(
    """
    import sys, anthropic, openai
    o = openai.OpenAI(api_key="k", base_url=sys.argv[1] + "/v1", max_retries=0)
    a = anthropic.Anthropic(api_key="k", base_url=sys.argv[1], max_retries=0)
    for i in range(20):
        o.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        with a.messages.stream(model="claude-haiku-4-5", max_tokens=16,
                               messages=[{"role": "user", "content": "y"}]) as s:
            s.get_final_message()
    """
)


def test_concurrent_processes(devserver: DevServer):
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, devserver.url]) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert len(devserver.requests) == 3 * 40


def test_same_request_same_reply_across_servers():
    def ask(server: DevServer) -> tuple[str, object, object]:
        client = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
        reply = client.chat.completions.create(model="o3-mini", messages=MSG)  # type: ignore[arg-type]
        claude = anthropic.Anthropic(api_key="k", base_url=server.anthropic_base_url)
        message = claude.messages.create(model="claude-haiku-4-5", max_tokens=99, messages=MSG)  # type: ignore[arg-type]
        return reply.id, reply.model_dump(), message.model_dump()

    with DevServer() as one, DevServer() as two:
        assert one.url != two.url
        assert ask(one) == ask(two)


def test_lifecycle():
    server = DevServer()
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
    assert server.openai_base_url == server.url + "/v1"
    assert server.anthropic_base_url == server.url
    server.start()
    assert server.start() is server  # idempotent
    assert httpx2.get(server.openai_base_url + "/models").status_code == 200
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(server.openai_base_url + "/models")
    with pytest.raises(RuntimeError):
        server.start()


def test_plain_http_errors(devserver: DevServer):
    nothing = httpx2.post(devserver.url + "/v1/nothing", json={})
    assert nothing.status_code == 404 and "error" in nothing.json()
    bad = httpx2.post(
        devserver.url + "/v1/messages",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 400 and bad.json()["type"] == "error"
    unknown_fault = httpx2.post(
        devserver.openai_base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": MSG},
        headers={"x-finops-fault": "explode"},
    )
    assert unknown_fault.status_code == 400


def test_keep_alive_reuses_one_connection(devserver: DevServer):
    with httpx2.Client() as http:
        for _ in range(5):
            r = http.post(
                devserver.openai_base_url + "/chat/completions",
                json={"model": "gpt-4o", "messages": MSG, "stream": True},
            )
            assert r.text.endswith("data: [DONE]\n\n")
    ports = {r.client_port for r in devserver.requests}
    assert len(ports) == 1 and len(devserver.requests) == 5


def test_per_request_server_time_is_small(devserver: DevServer):
    client = openai.OpenAI(api_key="k", base_url=devserver.openai_base_url, max_retries=0)
    samples = []
    for _ in range(60):
        started = time.perf_counter()
        client.chat.completions.create(model="gpt-4o", messages=MSG)  # type: ignore[arg-type]
        samples.append(time.perf_counter() - started)
    # The whole round trip through the real SDK; generous bound for a loaded CI machine.
    assert statistics.median(samples[10:]) < 0.02


def test_serve_forever_in_a_process():
    port = free_port()
    code = (
        f"from finops.devserver import serve_forever; serve_forever(host='127.0.0.1', port={port})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx2.post(
                    f"http://127.0.0.1:{port}/v1/embeddings",
                    json={"model": "text-embedding-3-small", "input": "hi"},
                )
                break
            except httpx2.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
