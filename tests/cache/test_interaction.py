"""The guard's interaction head: numpy evaluation, file round trip, wiring into the guard."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from finops.cache.interaction import Interaction
from finops.cache.semantic import LEXICAL_FEATURES, TOKEN_FEATURES, Guard, Tokens, load_guard
from finops.errors import ConfigError

F = len(LEXICAL_FEATURES) + len(TOKEN_FEATURES)


def _head(d: int = 8, h: int = 5, seed: int = 0, f: int = F) -> Interaction:
    rng = np.random.default_rng(seed)

    def r(*shape: int) -> np.ndarray:  # type: ignore[type-arg]
        return rng.normal(scale=0.3, size=shape).astype(np.float32)

    return Interaction(
        proj_w=r(384, d),
        proj_b=r(d),
        ffn_w=r(4 * d + 2, d),
        ffn_b=r(d),
        out1_w=r(4 * d + f, h),
        out1_b=r(h),
        out2_w=r(h),
        out2_b=0.25,
        mean=r(f),
        scale=np.abs(r(f)) + 0.5,
        provenance={"test": True},
    )


def _reference(head: Interaction, A, ca, B, cb, f) -> float:  # type: ignore[no-untyped-def]
    """The head written out with explicit concatenations (as the torch model computes it)."""

    def relu(x):  # type: ignore[no-untyped-def]
        return np.maximum(x, 0)

    def softmax(x):  # type: ignore[no-untyped-def]
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    d = head.width
    a, b = A @ head.proj_w + head.proj_b, B @ head.proj_w + head.proj_b
    sim = A @ B.T

    def side(x, z, best, c):  # type: ignore[no-untyped-def]
        att = softmax(x @ z.T / np.sqrt(d)) @ z
        m = np.concatenate([x, att, x - att, x * att, best[:, None], c[:, None]], axis=1)
        hidden = relu(m @ head.ffn_w + head.ffn_b)
        return np.concatenate([hidden.max(axis=0), hidden.mean(axis=0)])

    ha = side(a, b, sim.max(axis=1), ca.astype(np.float32))
    hb = side(b, a, sim.max(axis=0), cb.astype(np.float32))
    v = np.concatenate([ha + hb, np.abs(ha - hb), (f - head.mean) / head.scale])
    return float(relu(v @ head.out1_w + head.out1_b) @ head.out2_w + head.out2_b)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:  # type: ignore[type-arg]
    x = rng.normal(size=(n, 384)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_numpy_head_equals_its_written_out_form() -> None:
    head = _head()
    rng = np.random.default_rng(1)
    A, ca = _unit(rng, 7), rng.random(7) > 0.5
    cands = [(_unit(rng, n), rng.random(n) > 0.5) for n in (3, 9, 1, 12)]
    f = rng.normal(size=(4, F)).astype(np.float32)
    got = head.logits(A, ca, cands, f)
    want = [_reference(head, A, ca, B, cb, f[i]) for i, (B, cb) in enumerate(cands)]
    assert got.shape == (4,) and np.allclose(got, want, atol=1e-4)
    assert head.logits(A, ca, [], f[:0]).shape == (0,)


def test_head_file_round_trip_and_shape_checks(tmp_path: Path) -> None:
    head = _head()
    buf = io.BytesIO()
    head.save(buf)
    buf.seek(0)
    back = Interaction.load(buf)
    assert back.provenance == {"test": True}
    assert np.allclose(back.ffn_w, head.ffn_w, atol=2e-3)  # float16 in the file
    bad = Interaction(
        **{**{k: getattr(head, k) for k in head.__dataclass_fields__}, "ffn_b": head.ffn_b[:3]}
    )
    bad.save(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="ffn_b"):
        Interaction.load(tmp_path / "bad.npz")


def _tokens(rows: np.ndarray, content: np.ndarray) -> Tokens:  # type: ignore[type-arg]
    top = np.abs(rows).max(axis=1)
    return Tokens(
        np.round(rows / top[:, None] * 127).astype(np.int8), (top / 127).astype(np.float16), content
    )


def test_guard_with_a_head_scores_and_round_trips(tmp_path: Path) -> None:
    head = _head()
    head.save(tmp_path / "my_head.npz")
    empty = np.zeros(0, dtype=np.float32)
    guard = Guard(
        empty,
        0.0,
        empty,
        empty,
        0.5,
        0.7,
        "e",
        {"p": 1},
        uses_tokens=True,
        head=Interaction.load(tmp_path / "my_head.npz"),
        head_file="my_head.npz",
    )
    data = guard.to_json()
    assert data["format"] == 4 and data["head"] == "my_head.npz"
    (tmp_path / "guard.json").write_text(json.dumps(data))
    loaded = load_guard(tmp_path / "guard.json")  # the head is read from beside the guard file
    assert loaded.head is not None and loaded.threshold == 0.5 and loaded.uses_tokens
    rng = np.random.default_rng(2)
    q = _tokens(_unit(rng, 6), np.ones(6, dtype=bool))
    others = [_tokens(_unit(rng, n), np.ones(n, dtype=bool)) for n in (4, 8)]
    features = np.zeros((2, len(LEXICAL_FEATURES) + 768), dtype=np.float32)
    features[:, 0] = 0.8  # cosine; no veto, not the same words
    tok = rng.normal(size=(2, len(TOKEN_FEATURES))).astype(np.float32)
    p = loaded.score(features, tok, pairs=[(q, t) for t in others])
    z = [
        _reference(
            loaded.head,
            q.unit(),
            q.content,
            t.unit(),
            t.content,
            np.concatenate([features[i, :12], tok[i]]),
        )
        for i, t in enumerate(others)
    ]
    assert np.allclose(p, 1 / (1 + np.exp(-np.array(z))), atol=1e-5)
    single = loaded.score(features[0], tok[0], pairs=[(q, others[0])])
    assert single.shape == () and abs(float(single) - p[0]) < 1e-6
    with pytest.raises(ValueError, match="pairs"):
        loaded.score(features, tok)
    vetoed = features.copy()
    vetoed[:, LEXICAL_FEATURES.index("negation_mismatch")] = 1.0
    assert (loaded.score(vetoed, tok, pairs=[(q, t) for t in others]) == 0).all()  # vetoes stay
    (tmp_path / "my_head.npz").unlink()
    with pytest.raises(ConfigError, match=r"my_head\.npz"):
        load_guard(tmp_path / "guard.json")
    data["format"] = 5
    (tmp_path / "guard.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="newer"):
        load_guard(tmp_path / "guard.json")


def test_guard_mixes_the_trees_and_the_head_log_odds(tmp_path: Path) -> None:
    from dataclasses import replace

    head = _head(seed=5)
    head.save(tmp_path / "h.npz")
    trees = load_guard().trees
    assert trees is not None
    empty = np.zeros(0, dtype=np.float32)
    mixed = Guard(
        empty, -0.3, empty, empty, 0.5, 0.7, "e", {}, trees=trees, uses_tokens=True,
        head=head, head_file="h.npz", mix=0.25,
    )  # fmt: skip
    data = mixed.to_json()
    assert data["format"] == 4 and data["mix"] == 0.25 and "trees" in data
    (tmp_path / "g.json").write_text(json.dumps(data))
    loaded = load_guard(tmp_path / "g.json")
    assert loaded.trees is not None and loaded.head is not None and loaded.mix == 0.25
    rng = np.random.default_rng(6)
    q = _tokens(_unit(rng, 5), np.ones(5, dtype=bool))
    others = [_tokens(_unit(rng, n), np.ones(n, dtype=bool)) for n in (3, 7)]
    features = np.zeros((2, len(LEXICAL_FEATURES) + 768), dtype=np.float32)
    features[:, 0] = 0.85
    tok = rng.normal(size=(2, len(TOKEN_FEATURES))).astype(np.float32)
    pairs = [(q, t) for t in others]
    x = np.concatenate([features[:, :12], tok], axis=1)
    z_trees = trees.decision(x) - 0.3
    assert loaded.head is not None  # float16 in the file: compare with what was read back
    z_head = loaded.head.logits(q.unit(), q.content, [(t.unit(), t.content) for t in others], x)
    z = 0.75 * z_trees + 0.25 * z_head
    assert np.allclose(loaded.score(features, tok, pairs=pairs), 1 / (1 + np.exp(-z)), atol=1e-5)
    trees_only = replace(loaded, head=None, head_file="", mix=1.0)
    head_only = replace(loaded, trees=None, bias=0.0, mix=1.0)
    assert np.allclose(trees_only.score(features, tok), 1 / (1 + np.exp(-z_trees)), atol=1e-5)
    assert np.allclose(head_only.score(features, tok, pairs=pairs), 1 / (1 + np.exp(-z_head)))
    data["mix"] = 1.5
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="mix"):
        load_guard(tmp_path / "g.json")


def test_guard_stacks_the_trees_log_odds_into_the_head(tmp_path: Path) -> None:
    head = _head(seed=7, f=F + 1)  # the 27 features, then the trees' log-odds
    head.save(tmp_path / "s.npz")
    trees = load_guard().trees
    assert trees is not None
    empty = np.zeros(0, dtype=np.float32)
    stacked = Guard(
        empty, 0.2, empty, empty, 0.5, 0.7, "e", {}, trees=trees, uses_tokens=True,
        head=head, head_file="s.npz", mix=0.6, stack=True,
    )  # fmt: skip
    data = stacked.to_json()
    assert data["stack"] is True and data["mix"] == 0.6
    (tmp_path / "g.json").write_text(json.dumps(data))
    loaded = load_guard(tmp_path / "g.json")
    assert loaded.stack and loaded.head is not None and loaded.head.features == F + 1
    rng = np.random.default_rng(8)
    q = _tokens(_unit(rng, 4), np.ones(4, dtype=bool))
    others = [_tokens(_unit(rng, n), np.ones(n, dtype=bool)) for n in (6, 2, 5)]
    features = np.zeros((3, len(LEXICAL_FEATURES) + 768), dtype=np.float32)
    features[:, 0] = 0.9
    tok = rng.normal(size=(3, len(TOKEN_FEATURES))).astype(np.float32)
    x = np.concatenate([features[:, :12], tok], axis=1)
    z_trees = trees.decision(x) + 0.2
    z_head = np.array(
        [
            _reference(
                loaded.head, q.unit(), q.content, t.unit(), t.content, np.r_[x[i], z_trees[i]]
            )
            for i, t in enumerate(others)
        ]
    )
    z = 0.4 * z_trees + 0.6 * z_head
    p = loaded.score(features, tok, pairs=[(q, t) for t in others])
    assert np.allclose(p, 1 / (1 + np.exp(-z)), atol=1e-5)
    single = loaded.score(features[1], tok[1], pairs=[(q, others[1])])
    assert abs(float(single) - p[1]) < 1e-6
    # a stacked head needs the trees, and reads one feature more than an unstacked one
    del data["trees"]
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="no trees"):
        load_guard(tmp_path / "g.json")
    data = stacked.to_json()
    del data["stack"]
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="28 features, not 27"):
        load_guard(tmp_path / "g.json")


def test_shipped_guard_head_is_float16_with_provenance() -> None:
    from importlib import resources

    guard = load_guard()
    assert guard.head is not None and guard.head_file == "guard_head.npz"
    file = resources.files("finops.cache").joinpath("data/guard_head.npz")
    with file.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        assert data["proj_w"].dtype == np.float16
        prov = json.loads(str(data["provenance"]))
    assert "sha256" in prov["source"] and prov["training"]["seed"] == 0
    assert prov["command"].startswith("python scripts/train_interaction.py")
    assert prov["mix"]["weight"] == guard.mix and prov["mix"]["threshold"] == guard.threshold


def test_index_lookup_passes_token_pairs_to_a_head_guard(tmp_path: Path) -> None:
    from finops.cache.semantic import SemanticIndex

    head = _head(seed=3)
    empty = np.zeros(0, dtype=np.float32)
    guard = Guard(empty, 0.0, empty, empty, 0.0, 0.5, "e", {}, uses_tokens=True, head=head)
    rng = np.random.default_rng(4)
    base = _unit(rng, 1)[0]
    index = SemanticIndex(dim=384)
    stored = {}
    for i in range(3):
        v = base + 0.2 * _unit(rng, 1)[0]
        v /= np.linalg.norm(v)
        index.add("ctx", f"k{i}", f"stored text {i}", v.astype(np.float32))
        stored[f"k{i}"] = _tokens(_unit(rng, 4 + i), np.ones(4 + i, dtype=bool))
    query = _tokens(_unit(rng, 5), np.ones(5, dtype=bool))
    match = index.lookup("ctx", "a query", base, guard, tokens=query, stored_tokens=stored.get)
    assert match is not None
    from finops.cache.semantic import pair_features, token_features

    v = index._shards["ctx"].vectors[int(match.key[1:])].astype(np.float32)
    alone = guard.score(
        pair_features("a query", match.text, base, v),
        np.asarray(token_features(query, stored[match.key]), dtype=np.float32),
        pairs=[(query, stored[match.key])],
    )
    assert abs(float(alone) - match.score) < 1e-5  # the same score as the pair scored alone
    high = Guard(empty, 0.0, empty, empty, 1.01, 0.5, "e", {}, uses_tokens=True, head=head)
    assert (
        index.lookup("ctx", "a query", base, high, tokens=query, stored_tokens=stored.get) is None
    )
