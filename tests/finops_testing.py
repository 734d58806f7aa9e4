"""Helpers shared by the tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import time
from pathlib import Path

import finops

#: The redis-server binary, or None (tests that need it skip with that reason).
REDIS_SERVER = shutil.which("redis-server")


def rows(fo: finops.FinOps, where: str = "TRUE") -> list[dict[str, object]]:
    """All ledger rows (after a flush) as dicts, oldest first."""
    assert fo.flush(timeout_s=30)
    names = [f.name for f in dataclasses.fields(finops.LedgerRow)]
    result = fo.ledger.query(
        f"SELECT {', '.join(names)} FROM calls WHERE {where} ORDER BY ts_start, attempt"
    )
    return [dict(zip(names, r, strict=True)) for r in result]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throw-away redis-server on 127.0.0.1 (no persistence), in a temp directory.

    ``stop()`` then ``start()`` restarts it empty on the same port (the "Redis killed
    mid-run and restarted" fault); ``kill()`` is ``kill -9``.
    """

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        assert REDIS_SERVER is not None, "redis-server is not installed"
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server and wait until it answers PING (10 s at most)."""
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
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
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def flush(self) -> None:
        """Delete every key."""
        import redis

        client = redis.Redis.from_url(self.url)
        client.flushall()
        client.close()

    def kill(self) -> None:
        """``kill -9`` the server and wait for it to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Terminate the server (kill it if it does not stop within 5 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bedrock_client(server: object) -> object:
    """A real boto3 ``bedrock-runtime`` client pointed at the DevServer (dummy credentials)."""
    from finops.devserver import bedrock_client as client

    return client(server.url)  # type: ignore[attr-defined]
