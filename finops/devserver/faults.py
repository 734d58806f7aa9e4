"""Faults the local provider server can play instead of (or in the middle of) a normal reply."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Fault"]

_KINDS = ("status", "slow", "garbage", "truncated_sse", "drop_stream")


@dataclass(frozen=True)
class Fault:
    """One fault. Build it with a class method; queue it with ``DevServer.inject``.

    ``kind`` is one of ``status``, ``slow``, ``garbage``, ``truncated_sse``, ``drop_stream``.
    """

    kind: str
    status_code: int = 200
    retry_after: float | None = None
    retry_after_ms: float | None = None
    delay: float = 0.0
    per_event: float = 0.0
    after: int = 2

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {_KINDS}")

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
    ) -> Fault:
        """An HTTP error reply in the provider's error format (429, 500, 529...). On the
        Bedrock paths it is AWS's: ``{"message"}`` and an ``x-amzn-errortype`` header (429 a
        ``ThrottlingException``, 503 ``ServiceUnavailableException``, ...).

        ``retry_after`` sets the ``retry-after`` header (seconds, may be fractional: the SDKs
        accept that), ``retry_after_ms`` the ``retry-after-ms`` header (the SDKs prefer it).
        """
        return cls(
            "status", status_code=code, retry_after=retry_after, retry_after_ms=retry_after_ms
        )

    @classmethod
    def slow(cls, seconds: float, *, per_event: float = 0.0) -> Fault:
        """Wait ``seconds`` before replying normally; streams also wait ``per_event`` between
        events (so a client can cancel or time out mid-stream)."""
        return cls("slow", delay=seconds, per_event=per_event)

    @classmethod
    def garbage(cls) -> Fault:
        """A 200 reply, labelled JSON, whose body is not JSON."""
        return cls("garbage")

    @classmethod
    def truncated_sse(cls, after: int = 2) -> Fault:
        """A stream that ends cleanly (complete HTTP body) after ``after`` events, so it lacks
        its final events (usage chunk, ``[DONE]``, ``response.completed``, ``message_stop``).
        Non-streaming requests are answered normally."""
        return cls("truncated_sse", after=after)

    @classmethod
    def drop_stream(cls, after: int = 2) -> Fault:
        """The connection is cut after ``after`` SSE events (an incomplete chunked body).
        A non-streaming request gets half of its JSON body, then the cut."""
        return cls("drop_stream", after=after)

    @classmethod
    def from_header(cls, value: str) -> Fault:
        """Parse an ``x-finops-fault`` header: ``429``, ``429:0.5`` (retry-after seconds),
        ``500``, ``slow``, ``slow:0.2``, ``garbage``, ``truncated_sse[:N]``, ``drop_stream[:N]``.
        """
        name, _, arg = value.strip().partition(":")
        name = name.strip()
        if name.isdigit():
            code = int(name)
            retry = float(arg) if arg else (0.01 if code == 429 else None)
            return cls.status(code, retry_after=retry)
        if name == "slow":
            return cls.slow(float(arg) if arg else 0.2)
        if name in ("truncated_sse", "drop_stream"):
            return cls(name, after=int(arg) if arg else 2)
        return cls(name)
