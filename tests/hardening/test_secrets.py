"""Secrets and privacy: a full workload (ledger, spool, SQLite budgets, logs, warnings, a
Parquet export) with recognizable fake keys; every file it writes is searched for the keys,
for the Authorization / x-api-key header values, and for the prompt text (which may only
appear with store_content=True)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import anthropic
import duckdb
import httpx2
import openai
import pytest

import finops
from finops.devserver import DevServer, Fault

OPENAI_KEY = "sk-proj-LEAKCANARY-7f3a9c2e5b1d4e6f8a0b"
ANTHROPIC_KEY = "sk-ant-api03-LEAKCANARY-c0ffee1234567890"
CANARIES = [
    OPENAI_KEY.encode(),
    ANTHROPIC_KEY.encode(),
    b"LEAKCANARY",
    f"Bearer {OPENAI_KEY}".encode(),
]
PROMPT = "PROMPTCANARY what is the capital of France"


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _leaks(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in _all_files(root):
        data = path.read_bytes()
        for needle in needles:
            if needle in data:
                found.append(f"{path.relative_to(root)}: {needle.decode(errors='replace')}")
    return found


def _workload(fo: finops.FinOps, server: DevServer, log_path: Path) -> None:
    oai = fo.wrap(openai.OpenAI(api_key=OPENAI_KEY, base_url=server.openai_base_url, max_retries=2))
    ant = fo.wrap(
        anthropic.Anthropic(
            api_key=ANTHROPIC_KEY, base_url=server.anthropic_base_url, max_retries=2
        )
    )
    msgs: Any = [{"role": "user", "content": PROMPT}]
    with finops.tags(team="search", user="u1"):
        oai.chat.completions.create(model="gpt-4o", messages=msgs, max_tokens=20)
        for _ in oai.chat.completions.create(model="gpt-4o", messages=msgs, stream=True):
            pass
        oai.responses.create(model="gpt-4o", input=PROMPT)
        for _ in oai.responses.create(model="gpt-4o", input=PROMPT, stream=True):
            pass
        oai.embeddings.create(model="text-embedding-3-small", input=PROMPT)
        ant.messages.create(model="claude-sonnet-4-5", max_tokens=32, messages=msgs)
        for _ in ant.messages.create(
            model="claude-sonnet-4-5", max_tokens=32, messages=msgs, stream=True
        ):
            pass
        server.inject(Fault.status(429, retry_after=0.01))
        oai.chat.completions.create(model="gpt-4o", messages=msgs)
        server.inject(Fault.status(500), times=3)
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(model="gpt-4o", messages=msgs)
        server.inject(Fault.drop_stream(after=2))
        with pytest.raises(Exception):  # noqa: B017 - the SDK's own error for a cut stream
            for _ in oai.chat.completions.create(model="gpt-4o", messages=msgs, stream=True):
                pass
        oai.chat.completions.create(model="no-such-model-xyz", messages=msgs)
    with finops.tags(team="capped"), pytest.raises(finops.BudgetExceeded):
        oai.chat.completions.create(model="gpt-4o", messages=msgs, max_tokens=4000)

    # A provider that echoes the key in its error (OpenAI's 401 does: "Incorrect API key
    # provided: sk-proj-...").
    def echo(request: httpx2.Request) -> httpx2.Response:
        auth = request.headers.get("authorization", "")
        return httpx2.Response(
            401,
            json={
                "error": {
                    "message": f"Incorrect API key provided: {auth[7:]}. Headers: "
                    f"authorization={auth}",
                    "type": "invalid_request_error",
                }
            },
        )

    echoing = fo.wrap(
        openai.OpenAI(
            api_key=OPENAI_KEY,
            base_url="http://provider.test/v1",
            http_client=httpx2.Client(transport=httpx2.MockTransport(echo)),
            max_retries=0,
        )
    )
    with pytest.raises(openai.AuthenticationError) as info:
        echoing.chat.completions.create(model="gpt-4o", messages=msgs)
    assert OPENAI_KEY in str(info.value)  # the caller still sees the provider's own message


@pytest.mark.parametrize("store_content", [False, True])
def test_no_secret_reaches_any_file(
    devserver: DevServer, tmp_path: Path, store_content: bool
) -> None:
    work = tmp_path / "work"
    log_path = work / "finops.log"
    work.mkdir()
    # finops' own log and its warnings in one file; everything else (the SDKs' and httpx2's
    # DEBUG logs) in another. Both are searched for keys; the prompt check reads finops'
    # (the SDKs log request bodies at DEBUG themselves: the application's choice, not ours).
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.addFilter(lambda r: r.name in ("finops", "py.warnings") or r.name.startswith("finops."))
    sdk_handler = logging.FileHandler(work / "sdk.debug", encoding="utf-8")
    sdk_handler.addFilter(lambda r: not (r.name == "finops" or r.name.startswith("finops.")))
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    root.addHandler(sdk_handler)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            fo = finops.FinOps(
                ledger=work / "ledger.duckdb",
                spool_dir=work / "spool",
                budgets=[
                    finops.Budget(scope={"team": "search"}, limit="100", period="day"),
                    finops.Budget(scope={"team": "capped"}, limit="0.000001", period="day"),
                ],
                budget_store=f"sqlite:///{work / 'budgets.db'}",
                store_content=store_content,
            )
            _workload(fo, devserver, log_path)
            # while running: the spool holds rows not yet ingested, grep it as it is
            live = _leaks(work, CANARIES)
            assert fo.flush(timeout_s=30)
            n = fo.ledger.query("SELECT count(*) FROM calls")[0][0]
            fo.close()
    finally:
        for h in (handler, sdk_handler):
            root.removeHandler(h)
            h.close()
        root.setLevel(old_level)
        logging.captureWarnings(False)
    assert n >= 14
    con = duckdb.connect(str(work / "ledger.duckdb"))
    con.execute(f"COPY (SELECT * FROM calls) TO '{work / 'export.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT * FROM calls) TO '{work / 'export.csv'}' (HEADER)")
    con.close()
    assert (work / "export.parquet").stat().st_size > 0
    assert log_path.stat().st_size > 0, "the workload logged nothing: the log check is void"
    files = {p.name for p in _all_files(work)}
    assert {"ledger.duckdb", "budgets.db", "finops.log", "export.parquet"} <= files, files

    assert live == [], f"secrets in files while running: {live}"
    assert _leaks(work, CANARIES) == []
    # the 401 row kept the provider's message, with the key redacted
    con = duckdb.connect(str(work / "ledger.duckdb"), read_only=True)
    [(message,)] = con.execute("SELECT error_message FROM calls WHERE http_status = 401").fetchall()
    con.close()
    assert "Incorrect API key provided" in message and "[redacted]" in message

    prompt_leaks = [p for p in _leaks(work, [b"PROMPTCANARY"]) if not p.startswith("sdk.debug")]
    if store_content:
        assert any(p.startswith(("ledger.duckdb", "export")) for p in prompt_leaks), prompt_leaks
    else:
        assert prompt_leaks == [], f"prompt text stored without store_content=True: {prompt_leaks}"
