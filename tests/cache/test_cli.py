"""``finops cache stats|clear|calibrate`` against a real ledger and store."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

import finops
from finops.cli import app
from finops.devserver import DevServer


def _toml(tmp_path: Path) -> Path:
    cfg = tmp_path / "finops.toml"
    cfg.write_text(
        '[finops]\nledger = "l.duckdb"\n[cache]\nstore = "diskcache://c"\ntenant = "team"\n'
    )
    return cfg


def test_stats_and_clear(tmp_path: Path, devserver: DevServer) -> None:
    cfg = _toml(tmp_path)
    with finops.FinOps.from_config(cfg) as fo:
        client = fo.wrap(
            openai.OpenAI(api_key="sk-test", base_url=devserver.openai_base_url, max_retries=0)
        )
        for team in ("a", "a", "a", "b"):
            with finops.tags(team=team, feature="faq"):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
    runner = CliRunner()
    out = runner.invoke(app, ["cache", "stats", "--config", str(cfg), "--json"])
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)
    assert s["entries"] == 2 and s["lookups"] == {"miss": 2, "exact_hit": 2}
    assert s["hit_rate"] == 0.5 and s["hits_by_tier"] == {"memory": 2}
    assert float(s["saved_usd"]) > 0
    assert {(t["tag"], t["value"], t["hits"]) for t in s["saved_by_tag"]} == {
        ("team", "a", 2),
        ("feature", "faq", 2),
    }
    text = runner.invoke(app, ["cache", "stats", "--config", str(cfg)])
    assert "hit rate: 50.0%" in text.output and "team=a: 2 hits" in text.output
    out = runner.invoke(app, ["cache", "clear", "--config", str(cfg), "--older-than", "1d"])
    assert "removed 0 entries" in out.output
    out = runner.invoke(app, ["cache", "clear", "--config", str(cfg), "--tenant", "a"])
    assert "removed 1 entry" in out.output
    out = runner.invoke(app, ["cache", "stats", "--config", str(cfg), "--json"])
    assert json.loads(out.output)["entries"] == 1
    out = runner.invoke(app, ["cache", "clear", "--config", str(cfg)])
    assert "removed 1 entry" in out.output


@pytest.mark.parametrize("model", ["logistic", "trees"])
def test_calibrate_command(tmp_path: Path, model: str) -> None:
    pytest.importorskip("onnxruntime")
    if model == "trees":
        pytest.importorskip("sklearn")  # fitting the tree guard needs scikit-learn
    pairs = tmp_path / "pairs.jsonl.gz"
    topics = ["refund", "password", "invoice", "shipping", "account", "discount", "order", "login"]
    with gzip.open(pairs, "wt") as fh:
        for a in topics:
            for b in topics:
                if a == b:
                    continue
                for form in range(4):
                    q = f"How do I change my {a} and {b} settings{'?' * (form + 1)}"
                    fh.write(
                        json.dumps(
                            {
                                "a": q,
                                "b": f"How can I change my {a} and {b} settings?",
                                "duplicate": True,
                            }
                        )
                        + "\n"
                    )
                    fh.write(
                        json.dumps(
                            {
                                "a": q,
                                "b": f"How do I change my {b} and {a} settings?",
                                "duplicate": False,
                            }
                        )
                        + "\n"
                    )
    out = tmp_path / "guard.json"
    result = CliRunner().invoke(
        app,
        [
            "cache",
            "calibrate",
            "--pairs",
            str(pairs),
            "--target-false-hit",
            "0.05",
            "--out",
            str(out),
            "--model",
            model,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "held-out: precision" in result.output and "95% CI" in result.output
    guard = json.loads(out.read_text())
    assert guard["provenance"]["target_false_hit"] == 0.05 and 0 < guard["threshold"] <= 1
