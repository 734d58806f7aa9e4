"""Helpers shared by the budget tests and their worker script (importable by name)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server")

#: A finops.toml with three budgets (a team/day USD limit, per-agent downgrading token
#: limits, a monthly warn budget), shared by the model and CLI tests.
TOML = """
[finops]
budget_store = "sqlite:///budgets.db"

[[budgets]]
scope = { team = "search" }
limit = "50.00"
period = "day"
tz = "Europe/Paris"

[[budgets]]
name = "agents"
scope = { agent = "*" }
limit = 200_000
unit = "tokens"
period = "hour"
action = "downgrade"
downgrade_to = "gpt-4o-mini"

[[budgets]]
limit = 1000.5
period = "month"
action = "warn"
"""


class FakeClock:
    """A clock the test moves by hand (timezone-aware)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throw-away redis-server on 127.0.0.1 (no persistence), in a temp directory."""

    def __init__(self, workdir: Path) -> None:
        assert REDIS_SERVER is not None
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        client.flushall()
        client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
