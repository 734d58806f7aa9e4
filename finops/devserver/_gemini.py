"""The Gemini wire format (Gemini API and Vertex AI): generateContent, streamGenerateContent
(``?alt=sse``), embedContent and batchEmbedContents.

Paths: ``/v1beta/models/{model}:{method}`` (Gemini API) and
``/v1beta1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}`` (Vertex).
Usage (``usageMetadata``), deterministic like the other endpoints:
``promptTokenCount`` = text tokens of ``contents`` + ``systemInstruction`` (+ tool
declarations); ``candidatesTokenCount`` = words of the reply; models whose id contains
``2.5`` or ``thinking`` add ``thoughtsTokenCount`` (*not* included in candidates, as in the
real API); ``totalTokenCount`` is their sum. A stream sends one ``data:`` event per word,
each with the running usage (prompt only), and a last one with ``finishReason`` and the full
usage; events end with ``\\r\\n\\r\\n`` like Google's servers. ``server.next_usage({...})``
replaces ``usageMetadata`` (``cachedContentTokenCount``, ``toolUsePromptTokenCount``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finops.devserver import _synth as s
from finops.devserver._reply import Reply, dumps

__all__ = ["error", "handles", "reply"]

_METHODS = (":generateContent", ":streamGenerateContent", ":embedContent", ":batchEmbedContents")


def handles(path: str) -> bool:
    """Whether ``path`` is a Gemini model method."""
    return path.endswith(_METHODS)


def error(status: int, message: str, kind: str) -> Reply:
    """An error in Google's shape."""
    names = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
    names.update({429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"})
    return Reply(
        status, {"error": {"code": status, "message": message, "status": names.get(status, kind)}}
    )


def _model(path: str) -> tuple[str, str]:
    head, _, method = path.rpartition(":")
    return head.rsplit("/", 1)[-1], method


def _text(value: Any) -> str:
    """All text in a Gemini ``contents`` / ``systemInstruction`` / ``tools`` value."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_text(v) for k, v in value.items() if k not in ("role", "mimeType"))
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return ""


def reply(path: str, body: Mapping[str, Any], override: dict[str, Any] | None) -> Reply:
    """Answer one Gemini request."""
    model, method = _model(path)
    if method in ("embedContent", "batchEmbedContents"):
        return _embed(method, body)
    if "contents" not in body:
        return error(400, "* GenerateContentRequest.contents: contents is not specified", "")
    prompt = s.tokens(_text(body.get("contents"))) + s.tokens(_text(body.get("systemInstruction")))
    prompt += s.tokens(_text(body.get("tools")))
    seed = s.digest({"model": model, "contents": body.get("contents")})
    words = s.reply_words(seed, natural=s.natural_length(seed))
    limit = s.clamp_limit(dict(body.get("generationConfig") or {}).get("maxOutputTokens"))
    stop = "STOP"
    if limit is not None and len(words) > limit:
        words, stop = words[:limit], "MAX_TOKENS"
    thoughts = len(seed) % 7 + 3 if ("2.5" in model or "thinking" in model) else 0
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": len(words),
        "totalTokenCount": prompt + len(words) + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if override is not None:
        usage = dict(override)
    rid = seed[:20]
    if method == "generateContent":
        return Reply(
            200,
            {
                "candidates": [
                    {
                        "content": {"parts": [{"text": " ".join(words)}], "role": "model"},
                        "finishReason": stop,
                        "index": 0,
                    }
                ],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": rid,
            },
        )
    events: list[bytes] = []
    running = {"promptTokenCount": usage.get("promptTokenCount", prompt)}
    for i, word in enumerate(words):
        last = i == len(words) - 1
        chunk: dict[str, Any] = {
            "candidates": [
                {
                    "content": {"parts": [{"text": word + ("" if last else " ")}], "role": "model"},
                    **({"finishReason": stop} if last else {}),
                    "index": 0,
                }
            ],
            "usageMetadata": usage if last else running,
            "modelVersion": model,
            "responseId": rid,
        }
        events.append(b"data: " + dumps(chunk) + b"\r\n\r\n")
    return Reply(200, events=events)


def _embed(method: str, body: Mapping[str, Any]) -> Reply:
    def vector(content: Any) -> dict[str, Any]:
        seed = s.digest({"content": content})
        return {"values": [int(seed[i : i + 2], 16) / 255 for i in range(0, 16, 2)]}

    if method == "embedContent":
        if "content" not in body:
            return error(400, "content is not specified", "")
        return Reply(200, {"embedding": vector(body["content"])})
    requests = body.get("requests")
    if not isinstance(requests, list):
        return error(400, "requests is not specified", "")
    return Reply(200, {"embeddings": [vector(dict(r).get("content")) for r in requests]})
