"""Rows built off the caller's thread (finops/metering/deferred.py).

* the rows are the same, field for field, as rows built on the caller's thread;
* a call that returned is never lost on ``kill -9``: its pending record is replayed into
  the same row (same ``row_id``) by the next process, and a row that was already spooled
  before the kill is not written twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import finops
from finops.metering.deferred import PENDING_DIR
from finops.pipeline import Step
from finops_testing import rows

ROOT = Path(__file__).resolve().parents[2]

# Columns that differ between any two runs of the same calls.
_VOLATILE = {"row_id", "call_id", "ts_start", "ts_end", "latency_ms"}


class _Inline(Step):
    """A step with an ``after`` hook: the meter then builds every row on the caller's thread."""

    name = "inline"

    def after(self, call: Any, outcome: Any) -> None:
        return None


def _calls(fo: finops.FinOps, devserver: Any) -> None:
    import boto3
    from google import genai

    oai = fo.wrap(openai.OpenAI(api_key="sk-test", base_url=devserver.openai_base_url))
    ant = fo.wrap(anthropic.Anthropic(api_key="sk-ant-test", base_url=devserver.anthropic_base_url))
    gem = fo.wrap(genai.Client(api_key="test-key", http_options={"base_url": devserver.url}))
    bed = fo.wrap(
        boto3.client(
            "bedrock-runtime",
            endpoint_url=devserver.url,
            region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",
        )
    )
    msgs = [{"role": "user", "content": "Count the tokens of this request, please."}]
    for i in range(3):  # the first call of a model is metered inline, the others deferred
        tags = {"i": str(i)}
        oai.chat.completions.create(model="gpt-4o-mini", messages=msgs, finops_tags=tags)
        list(
            oai.chat.completions.create(
                model="gpt-4o-mini", messages=msgs, stream=True, finops_tags=tags
            )
        )
        oai.responses.create(model="gpt-4o", input="hello there", finops_tags=tags)
        list(oai.responses.create(model="gpt-4o", input="hello there", stream=True, finops_tags=tags))
        oai.embeddings.create(model="text-embedding-3-small", input="embed me", finops_tags=tags)
        ant.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=msgs, finops_tags=tags
        )
        with ant.messages.stream(
            model="claude-sonnet-4-5", max_tokens=64, messages=msgs, finops_tags=tags
        ) as stream:
            for _ in stream:
                pass
        gem.models.generate_content(model="gemini-2.0-flash", contents=f"hello {i}")
        list(gem.models.generate_content_stream(model="gemini-2.0-flash", contents="hi"))
        bed.converse(
            modelId="us.amazon.nova-lite-v1:0",
            messages=[{"role": "user", "content": [{"text": f"hello {i}"}]}],
        )
        msgs.append({"role": "assistant", "content": f"answer {i}"})  # mutated after the call
        msgs.append({"role": "user", "content": "and again"})
        msgs = msgs[:1]


def _comparable(fo: finops.FinOps) -> list[dict[str, object]]:
    out = [{k: v for k, v in r.items() if k not in _VOLATILE} for r in rows(fo)]
    return sorted(out, key=repr)


def test_deferred_rows_equal_inline_rows(devserver: Any, tmp_path: Path) -> None:
    deferred = finops.FinOps(ledger=tmp_path / "deferred.duckdb")
    inline = finops.FinOps(ledger=tmp_path / "inline.duckdb", steps=[_Inline()])
    try:
        assert deferred._meter.deferred is not None
        assert inline._meter.deferred is None
        _calls(deferred, devserver)
        _calls(inline, devserver)
        assert deferred._meter.deferred.pending == 0
        got, want = _comparable(deferred), _comparable(inline)
        assert len(got) == 30
        assert got == want
        assert all(r["status"] == "ok" and r["pricing_status"] == "priced" for r in got)
        assert all(r["est_input_tokens"] is not None for r in got)
    finally:
        deferred.close()
        inline.close()
    pending = tmp_path / "deferred.duckdb.spool" / PENDING_DIR
    assert not list(pending.glob("*.jsonl")), "pending journal left after close()"


def test_flush_of_the_ledger_waits_for_deferred_rows(devserver: Any, fo: finops.FinOps) -> None:
    client = fo.wrap(openai.OpenAI(api_key="sk-test", base_url=devserver.openai_base_url))
    for _ in range(20):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert fo.ledger.flush(timeout_s=30)  # the ledger's own flush, not fo.flush()
    assert fo.ledger.query("SELECT count(*) FROM calls") == [(20,)]


# argv: ledger, base_url, calls built normally, calls left pending. Prints "ready" once
# every call has returned, then waits to be killed.
WORKER = textwrap.dedent(
    """
    import sys, time, openai, finops
    ledger, base_url, built, pending = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    fo = finops.FinOps(ledger=ledger)
    deferred = fo._meter.deferred
    deferred.rotate_s = 3600.0  # keep every record in one journal file
    client = fo.wrap(openai.OpenAI(api_key="k", base_url=base_url, max_retries=0))
    def call(cid, stream):
        kw = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": cid}],
                  finops_tags={"cid": cid})
        if stream:
            list(client.chat.completions.create(stream=True, **kw))
        else:
            client.chat.completions.create(**kw)
    for i in range(built):
        call(f"built-{i}", i % 2 == 1)
    assert deferred.drain(timeout_s=30)  # these rows are in the spool (and their records)
    deferred._queue.append((None, lambda: time.sleep(1000)))  # the builder is stuck here:
    deferred._start()
    deferred._wake.set()  # every later record stays pending
    while deferred._queue:
        time.sleep(0.01)
    for i in range(pending):
        call(f"pending-{i}", i % 2 == 1)
    print("ready", deferred.pending, flush=True)
    time.sleep(120)
    """
)


@pytest.mark.parametrize("built", [0, 6])
def test_kill_9_loses_no_returned_call(devserver: Any, tmp_path: Path, built: int) -> None:
    path = tmp_path / "killed.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(path), devserver.openai_base_url, str(built), "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), proc.stderr.read() if proc.stderr else line
        # the first call of the model is built inline; every later one waits in the journal
        assert int(line.split()[1]) == (8 if built else 7)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    pending = path.parent / (path.name + ".spool") / PENDING_DIR
    assert list(pending.glob("*.jsonl")), "the killed process left no pending journal"

    # The next process replays the journal at start-up; the rows are the ones a live
    # process would have written (compared with the same calls made inline).
    fo = finops.FinOps(ledger=path)
    reference = finops.FinOps(ledger=tmp_path / "reference.duckdb", steps=[_Inline()])
    try:
        got = rows(fo)
        counts: dict[str, int] = {}
        for r in got:
            cid = r["tags"]["cid"]  # type: ignore[index]
            counts[cid] = counts.get(cid, 0) + 1
        expected = {f"built-{i}" for i in range(built)} | {f"pending-{i}" for i in range(8)}
        assert counts == dict.fromkeys(expected, 1)
        assert len({r["row_id"] for r in got}) == len(got)
        client = reference.wrap(
            openai.OpenAI(api_key="k", base_url=devserver.openai_base_url, max_retries=0)
        )
        for cid in sorted(expected):
            kw: dict[str, Any] = dict(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": cid}],
                finops_tags={"cid": cid},
            )
            if int(cid.rsplit("-", 1)[1]) % 2 == 1:
                list(client.chat.completions.create(stream=True, **kw))
            else:
                client.chat.completions.create(**kw)
        # A replayed row has no pre-call estimate (the prompt is not in the journal).
        skip = _VOLATILE | {"est_input_tokens", "est_output_tokens_max", "est_cost_max", "est_exact"}
        want = sorted(
            ({k: v for k, v in r.items() if k not in skip} for r in rows(reference)), key=repr
        )
        have = sorted(({k: v for k, v in r.items() if k not in skip} for r in got), key=repr)
        assert have == want
    finally:
        fo.close()
        reference.close()
    assert not list(pending.glob("*.jsonl"))
    assert not list((path.parent / (path.name + ".spool")).glob("*.jsonl"))


def test_every_pending_record_rebuilds_its_row(devserver: Any, tmp_path: Path) -> None:
    """What a replay after ``kill -9`` makes of each kind of record (a JSON body, a parsed
    stream, usage read by boto3) is the row the live process writes, estimates aside."""
    import threading

    from finops.metering.deferred import decode_record
    from finops.metering.meter import _rebuild

    fo = finops.FinOps(ledger=tmp_path / "l.duckdb")
    try:
        _calls(fo, devserver)  # every model once: later calls are deferred
        deferred = fo._meter.deferred
        assert deferred is not None and deferred.drain(timeout_s=30)
        gate = threading.Event()
        deferred._queue.append((None, gate.wait))  # the builder waits here
        deferred._wake.set()
        while deferred._queue:
            threading.Event().wait(0.01)
        before = deferred._submitted
        _calls(fo, devserver)
        assert deferred._submitted - before >= 25  # nearly every call was deferred
        lines = [
            line
            for path in sorted((tmp_path / "l.duckdb.spool" / PENDING_DIR).glob("*.jsonl"))
            for line in path.read_bytes().splitlines()
        ]
        for line in lines:  # no prompt, no answer text (store_content is off), no key
            assert b"Count the tokens" not in line and b"hello" not in line
            assert b"sk-test" not in line and b"AKIDEXAMPLE" not in line
            # parsed; usage read by boto3; or a chat stream's usage chunk as it arrived (no
            # choices, so no text)
            assert (
                b'"output_text":null' in line
                or line.startswith(b"[2,")
                or (b'"event",{' in line and b'"choices":[]' in line)
            )
        kinds_of_record = {decode_record(line)[22] for line in lines if line.startswith(b"[1,")}  # type: ignore[index]
        assert kinds_of_record == {"parsed", "event"}  # old records ("parsed") still replay
        rebuilt = {}
        for line in lines:
            record = decode_record(line)
            assert record is not None
            row = _rebuild(fo._meter, record)
            rebuilt[row.row_id] = row
        gate.set()
        assert deferred.drain(timeout_s=30)
        live = {r["row_id"]: r for r in rows(fo)}
        assert set(rebuilt) <= set(live)
        assert len(rebuilt) >= 25
        skip = {"est_input_tokens", "est_output_tokens_max", "est_cost_max", "est_exact"}
        kinds = set()
        for row_id, row in rebuilt.items():
            want = {k: v for k, v in live[row_id].items() if k not in skip}
            have = {k: getattr(row, k) for k in want}
            have["ts_start"] = have["ts_start"].astimezone(want["ts_start"].tzinfo)  # type: ignore[union-attr]
            have["ts_end"] = have["ts_end"].astimezone(want["ts_end"].tzinfo)  # type: ignore[union-attr]
            have["latency_ms"] = pytest.approx(want["latency_ms"], abs=0.01)
            assert have == want, row_id
            kinds.add((row.provider, row.endpoint, row.stream))
        assert len(kinds) >= 9
    finally:
        fo.close()


class _Savings(Step):
    """An ``on_row`` hook alone (like routing's counterfactual cost): rows stay deferred, and
    the hook runs on the builder thread, on the row being built."""

    name = "savings"

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def on_row(self, call: Any, row: Any) -> None:
        import threading

        self.threads.add(threading.current_thread().name)
        row.counterfactual_cost = Decimal("0.5")


def test_on_row_hooks_alone_keep_rows_deferred(devserver: Any, tmp_path: Path) -> None:
    step = _Savings()
    fo = finops.FinOps(ledger=tmp_path / "savings.duckdb", steps=[step])
    try:
        assert fo._meter.deferred is not None
        oai = fo.wrap(openai.OpenAI(api_key="k", base_url=devserver.url + "/v1", max_retries=0))
        msgs: Any = [{"role": "user", "content": "hi"}]
        for _ in range(3):
            oai.chat.completions.create(model="gpt-4o-mini", messages=msgs)
            list(oai.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True))
        fo.flush()
        got = rows(fo)
        assert len(got) == 6
        assert all(r["counterfactual_cost"] == Decimal("0.5") for r in got)
        assert "finops-metering" in step.threads  # the later calls were built off the caller
    finally:
        fo.close()
