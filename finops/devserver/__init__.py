"""A local provider server that speaks the OpenAI, Anthropic, Gemini and Bedrock wire formats
(127.0.0.1).

The demo, the tests and the benchmarks point the *real* SDKs at it with ``base_url=``::

    with DevServer() as server:                      # a free port on 127.0.0.1
        client = openai.OpenAI(api_key="x", base_url=server.openai_base_url)   # .../v1
        claude = anthropic.Anthropic(api_key="x", base_url=server.anthropic_base_url)

Endpoints (stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive, SSE as a chunked body):

* ``POST /v1/chat/completions`` — JSON; with ``stream: true`` SSE ``data:`` chunks ending in
  ``data: [DONE]``. Only with ``stream_options.include_usage`` does every chunk carry
  ``"usage": null`` and one last chunk (``choices: []``) the usage.
* ``POST /v1/responses`` — JSON; SSE ``response.created``, ``response.in_progress``,
  (a ``reasoning`` output item for reasoning models), ``response.output_item.added``,
  ``response.content_part.added``, ``response.output_text.delta``..., ``...text.done``,
  ``...content_part.done``, ``...output_item.done``, then ``response.completed`` with the
  usage (``response.incomplete`` when ``max_output_tokens`` cut the reply).
* ``POST /v1/embeddings`` — ``encoding_format`` ``float`` or ``base64`` (little-endian
  float32), ``dimensions`` (default 8, to keep bodies small).
* ``GET /v1/models``; ``POST /v1/messages/count_tokens``.
* ``POST /v1/messages`` — JSON; SSE ``message_start`` (usage, ``output_tokens: 1``),
  ``content_block_start``, ``ping`` (the documented order), ``content_block_delta``
  (``thinking_delta`` and ``signature_delta`` when ``thinking`` is enabled, then a text block
  of ``text_delta``), ``content_block_stop``, ``message_delta`` (cumulative ``output_tokens``; in about one
  stream in three, like the real API, also input counts larger than ``message_start``'s),
  ``message_stop``. ``anthropic.Anthropic().messages.stream(...)`` works.
* Gemini (``finops/devserver/_gemini.py``): ``POST .../models/{model}:generateContent``,
  ``:streamGenerateContent?alt=sse`` (``\r\n\r\n``-framed chunks, usage growing, the last
  with ``finishReason``), ``:embedContent``, ``:batchEmbedContents`` — Gemini API and Vertex
  (``/projects/{p}/locations/{l}/publishers/google/models/...``) paths; Claude on Vertex
  (``:rawPredict``, ``:streamRawPredict``) answers in the Anthropic format.
* Bedrock (``finops/devserver/_bedrock.py``): ``POST /model/{id}/converse``,
  ``/converse-stream`` (AWS binary event-stream frames with CRC32s), ``/invoke`` (token-count
  headers) and ``/invoke-with-response-stream`` (base64 Anthropic events, invocation metrics).
* Missing required fields get a 400 in the provider's error shape, unknown paths a 404.

Answers are deterministic: the reply (8–24 words, ids included) is derived from a SHA-256 of
the request minus ``stream``/``stream_options``, so the same request gets the same reply,
streamed or not. ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` cap it
(``finish_reason: length``, ``stop_reason: max_tokens``); the reported output never exceeds
the limit. Usage, also deterministic:

* input tokens = UTF-8 bytes / 4 (rounded up) per text part + 3 per message (+3 to prime
  the reply), Anthropic 4 per message; output tokens = words of the reply;
* reasoning models (``o1``, ``o3``, ``o4``, ``gpt-5``...) add ``reasoning_tokens`` (scaled by
  ``reasoning_effort`` / ``reasoning.effort``) *inside* ``completion_tokens`` /
  ``output_tokens``; Anthropic ``thinking`` adds a thinking block counted *in*
  ``output_tokens`` (and in ``output_tokens_details.thinking_tokens``);
* OpenAI prompt caching: a prompt whose prefix (at a message boundary, ≥ 1024 tokens) was
  seen before reports ``cached_tokens`` = 1024 + k·128 *included in* ``prompt_tokens``;
* Anthropic prompt caching: a ``cache_control`` breakpoint whose prefix (tools, system,
  messages; ≥ 1024 tokens) is new is written (``cache_creation_input_tokens``, split by
  ``ttl`` into ``cache_creation.ephemeral_5m/1h_input_tokens``); a prefix seen before is read
  (``cache_read_input_tokens``); both are *additive* to ``input_tokens``;
* model aliases are echoed as dated snapshots (``gpt-4o`` → ``gpt-4o-2024-08-06``,
  ``claude-sonnet-4-5`` → ``claude-sonnet-4-5-20250929``); unknown ids echo as sent.

Scripting, for tests:

* ``server.next_usage({...}, times=1)`` — the next successful reply carries exactly that
  provider-format usage object (Anthropic ``iterations``, ``server_tool_use``, audio...).
* ``server.inject(fault, times=1)`` queues a fault for the next POST requests, or per request
  the header ``x-finops-fault: 429`` / ``429:0.5`` / ``500`` / ``slow:0.2`` / ``garbage`` /
  ``truncated_sse:3`` / ``drop_stream:3``. Faults: ``Fault.status(code, retry_after=s,
  retry_after_ms=ms)`` (error body in the provider's shape), ``Fault.slow(seconds,
  per_event=s)``, ``Fault.garbage()`` (200 with a non-JSON body), ``Fault.truncated_sse(after)``
  (the stream ends cleanly after ``after`` events, without its final ones),
  ``Fault.drop_stream(after)`` (the connection is cut mid-body; JSON replies are cut halfway).
* ``server.requests`` — ``RecordedRequest(method, path, headers, body, time, client_port)``,
  credentials (``authorization``, ``x-api-key``...) left out; ``server.reset()`` clears the
  log, pending faults and usages, and the prompt cache.

``serve_forever(host=..., port=...)`` runs it in the foreground (``finops serve-fake``).
``bedrock_client(server.url)`` builds the boto3 ``bedrock-runtime`` client for it.
"""

from finops.devserver.clients import bedrock_client
from finops.devserver.faults import Fault
from finops.devserver.server import DevServer, RecordedRequest, serve_forever

__all__ = ["DevServer", "Fault", "RecordedRequest", "bedrock_client", "serve_forever"]
