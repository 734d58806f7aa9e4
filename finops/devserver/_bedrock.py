"""The AWS Bedrock runtime wire format: Converse, ConverseStream and InvokeModel.

Paths: ``/model/{modelId}/converse``, ``/model/{modelId}/converse-stream``,
``/model/{modelId}/invoke``. ConverseStream answers in AWS's binary event-stream framing
(``application/vnd.amazon.eventstream``): each message is a 12-byte prelude (total length,
headers length, CRC32 of both), headers (``:event-type``, ``:content-type``,
``:message-type``), a JSON payload and a CRC32 of the whole message. Events:
``messageStart``, ``contentBlockDelta`` (one per word), ``contentBlockStop``,
``messageStop``, ``metadata`` (usage and metrics). Usage: ``inputTokens`` (cache reads and
writes are *additive*: ``cacheReadInputTokens``, ``cacheWriteInputTokens``),
``outputTokens``, ``totalTokens``. InvokeModel answers an Anthropic Messages body and sets the
``x-amzn-bedrock-input-token-count`` / ``-output-token-count`` headers, like Bedrock.
``server.next_usage({...})`` replaces the usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from finops.devserver import _synth as s
from finops.devserver._reply import Reply, dumps
from finops.providers.bedrock import encode_event

__all__ = ["EVENTSTREAM", "encode_event", "error", "handles", "reply"]

EVENTSTREAM = "application/vnd.amazon.eventstream"
_SUFFIXES = ("/converse", "/converse-stream", "/invoke", "/invoke-with-response-stream")


def handles(path: str) -> bool:
    """Whether ``path`` is a Bedrock runtime model operation."""
    return path.startswith("/model/") and path.endswith(_SUFFIXES)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_text(v) for k, v in value.items() if k != "role")
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return ""


#: Bedrock runtime's error codes by HTTP status (``x-amzn-errortype``; botocore reads the
#: code from that header and retries ``ThrottlingException`` and 5xx replies).
_ERROR_CODES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def error(status: int, message: str, code: str | None = None) -> Reply:
    """A Bedrock runtime error reply: ``{"message": ...}`` and the ``x-amzn-errortype``
    header (``code``, or the usual one for ``status``: 429 is a ``ThrottlingException``)."""
    kind = code or _ERROR_CODES.get(
        status, "InternalServerException" if status >= 500 else "ValidationException"
    )
    return Reply(status, {"message": message}, headers={"x-amzn-errortype": kind})


def _error(status: int, message: str) -> Reply:
    return error(status, message, "ValidationException")


def reply(path: str, body: Mapping[str, Any], override: dict[str, Any] | None) -> Reply:
    """Answer one Bedrock runtime request."""
    model = unquote(path[len("/model/") :].rsplit("/", 1)[0])
    operation = path.rsplit("/", 1)[-1]
    if operation == "invoke":
        return _invoke(model, body, override)
    if operation == "invoke-with-response-stream":
        return _invoke_stream(model, body, override)
    if "messages" not in body:
        return _error(400, "The model returned the following errors: messages is required")
    prompt = s.tokens(_text(body.get("messages"))) + s.tokens(_text(body.get("system")))
    seed = s.digest({"model": model, "messages": body.get("messages")})
    words = s.reply_words(seed, natural=s.natural_length(seed))
    limit = s.clamp_limit(dict(body.get("inferenceConfig") or {}).get("maxTokens"))
    stop = "end_turn"
    if limit is not None and len(words) > limit:
        words, stop = words[:limit], "max_tokens"
    usage: dict[str, Any] = {
        "inputTokens": prompt,
        "outputTokens": len(words),
        "totalTokens": prompt + len(words),
    }
    if override is not None:
        usage = dict(override)
    metrics = {"latencyMs": 12}
    if operation == "converse":
        return Reply(
            200,
            {
                "output": {
                    "message": {"role": "assistant", "content": [{"text": " ".join(words)}]}
                },
                "stopReason": stop,
                "usage": usage,
                "metrics": metrics,
            },
        )
    events = [encode_event("messageStart", {"role": "assistant"})]
    for i, word in enumerate(words):
        text = word if i == len(words) - 1 else word + " "
        events.append(
            encode_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}})
        )
    events.append(encode_event("contentBlockStop", {"contentBlockIndex": 0}))
    events.append(encode_event("messageStop", {"stopReason": stop}))
    events.append(encode_event("metadata", {"usage": usage, "metrics": metrics}))
    return Reply(200, events=events, headers={"content-type": EVENTSTREAM})


def _invoke(model: str, body: Mapping[str, Any], override: dict[str, Any] | None) -> Reply:
    if "messages" not in body:
        return _error(400, "messages: field required")
    prompt = s.tokens(_text(body.get("messages"))) + s.tokens(_text(body.get("system")))
    seed = s.digest({"model": model, "messages": body.get("messages")})
    words = s.reply_words(seed, natural=s.natural_length(seed))
    usage: dict[str, Any] = {"input_tokens": prompt, "output_tokens": len(words)}
    if override is not None:
        usage = dict(override)
    headers = {
        "x-amzn-bedrock-input-token-count": str(usage.get("input_tokens", 0)),
        "x-amzn-bedrock-output-token-count": str(usage.get("output_tokens", 0)),
    }
    if usage.get("cache_read_input_tokens"):
        headers["x-amzn-bedrock-cache-read-input-token-count"] = str(
            usage["cache_read_input_tokens"]
        )
    if usage.get("cache_creation_input_tokens"):
        headers["x-amzn-bedrock-cache-write-input-token-count"] = str(
            usage["cache_creation_input_tokens"]
        )
    return Reply(
        200,
        {
            "id": "msg_bdrk_" + seed[:20],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": " ".join(words)}],
            "stop_reason": "end_turn",
            "usage": usage,
        },
        headers=headers,
    )


def _invoke_stream(model: str, body: Mapping[str, Any], override: dict[str, Any] | None) -> Reply:
    """Anthropic stream events, each base64-framed in a ``chunk`` event; the last one carries
    ``amazon-bedrock-invocationMetrics`` (the counts Bedrock bills)."""
    import base64

    answer = _invoke(model, body, override)
    if answer.status != 200:
        return answer
    usage = answer.body["usage"]
    words = answer.body["content"][0]["text"].split(" ")
    events_json: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {**answer.body, "content": [], "usage": {**usage, "output_tokens": 1}},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    for word in words:
        events_json.append(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": word + " "},
            }
        )
    events_json.append({"type": "content_block_stop", "index": 0})
    events_json.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": usage.get("output_tokens", 0)},
        }
    )
    events_json.append(
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": usage.get("input_tokens", 0),
                "outputTokenCount": usage.get("output_tokens", 0),
                "cacheReadInputTokenCount": usage.get("cache_read_input_tokens", 0),
                "cacheWriteInputTokenCount": usage.get("cache_creation_input_tokens", 0),
                "invocationLatency": 12,
                "firstByteLatency": 3,
            },
        }
    )
    events = [
        encode_event("chunk", {"bytes": base64.b64encode(dumps(e)).decode()}) for e in events_json
    ]
    return Reply(200, events=events, headers={"content-type": EVENTSTREAM})
