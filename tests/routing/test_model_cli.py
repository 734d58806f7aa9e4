"""Training is deterministic for a seed, the saved model loads back with the same scores,
the shipped model carries provenance, and the CLI's train/eval/score work end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from finops.cli import app
from finops.routing.model import (
    LabelledPrompt,
    RouterModel,
    default_model,
    load_labelled,
    load_model,
    train,
)


def _synthetic(n: int = 240, seed: int = 1) -> list[LabelledPrompt]:
    """Prompts where 'integral'/'matrix' questions need the strong model; others do not."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        hard = i % 3 == 0
        topic = rnd.choice(["integral of x^2 dx", "eigenvalues of the matrix"]) if hard else (
            rnd.choice(["capital of France", "colour of the sky", "opposite of hot"]))
        rows.append(LabelledPrompt(
            id=f"p{i}", prompt=f"Question {i}: what is the {topic}?\nA. 1\nB. 2\nAnswer:",
            strong_correct=True, weak_correct=not hard or rnd.random() < 0.1))
    return rows


def _write(path: Path, rows: list[LabelledPrompt]) -> Path:
    path.write_text("".join(json.dumps({"id": r.id, "prompt": r.prompt,
                                        "strong_correct": r.strong_correct,
                                        "weak_correct": r.weak_correct}) + "\n" for r in rows))
    return path


def test_training_is_deterministic_and_learns(tmp_path: Path) -> None:
    rows = _synthetic()
    a = train(rows, seed=3, bits=14)
    b = train(rows, seed=3, bits=14)
    assert np.array_equal(a.w_sparse, b.w_sparse) and a.version == b.version
    hard = a.score("Question 9999: what is the integral of x^2 dx?\nA. 1\nB. 2\nAnswer:")
    easy = a.score("Question 9999: what is the colour of the sky?\nA. 1\nB. 2\nAnswer:")
    assert hard > easy
    a.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.score("eigenvalues") == pytest.approx(a.score("eigenvalues"), abs=1e-6)
    assert loaded.meta["seed"] == 3 and loaded.meta["calibration"] == "held-out"
    assert np.all(np.diff(loaded.curve_quality) >= 0)  # monotone calibration curve


def test_shipped_model_has_provenance_and_is_numpy_only() -> None:
    model = default_model()
    meta = model.meta
    assert meta["version"].startswith("hashridge-") and meta["rows"] > 10000
    assert {Path(d["path"]).name for d in meta["data"]} == {"mmlu.jsonl.gz", "gsm8k.jsonl.gz"}
    assert meta["command"].startswith("finops routing train")
    assert 0.5 < meta["holdout_metrics"]["saving95"] < 1.0
    assert isinstance(model, RouterModel) and model.w_sparse.dtype == np.float32
    # a stricter target keeps more on the strong model (lower threshold); a target the weak
    # model meets alone (it keeps ~85 % of strong quality here) routes everything
    assert model.threshold_for_quality(0.97) < model.threshold_for_quality(0.95) < np.inf
    assert model.threshold_for_quality(0.80) == np.inf


def test_bad_data_is_a_config_error(tmp_path: Path) -> None:
    from finops.errors import ConfigError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    with pytest.raises(ConfigError, match="strong_correct"):
        load_labelled([bad])
    with pytest.raises(ConfigError):
        load_model(tmp_path / "nothing-here")


def test_cli_train_eval_score(tmp_path: Path) -> None:
    data = _write(tmp_path / "train.jsonl", _synthetic())
    test = _write(tmp_path / "test.jsonl", _synthetic(90, seed=2))
    runner = CliRunner()
    out = tmp_path / "model"
    res = runner.invoke(app, ["routing", "train", "--data", str(data), "--out", str(out),
                              "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert (out / "router.npz").exists() and (out / "router.json").exists()
    res = runner.invoke(app, ["routing", "eval", "--data", str(test), "--model", str(out),
                              "--json", "--plot", str(tmp_path / "curve.png")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert set(report) >= {"router", "random", "oracle"}
    assert report["router"]["saving95"] > report["random"]["saving95"]
    assert report["oracle"]["saving95"] >= report["router"]["saving95"]
    assert (tmp_path / "curve.png").read_bytes().startswith(b"\x89PNG")
    res = runner.invoke(app, ["routing", "eval", "--data", str(test), "--model", str(out)])
    assert res.exit_code == 0 and "oracle" in res.output and "APGR" in res.output
    scores = tmp_path / "scores.jsonl"
    res = runner.invoke(app, ["routing", "score", "--data", str(test), "--model", str(out),
                              "--out", str(scores)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in scores.read_text().splitlines()]
    assert len(lines) == 90 and lines[0]["id"] == "p0" and isinstance(lines[0]["score"], float)
    # the curve can be recomputed from the scores alone
    from finops.routing.metrics import evaluate

    labels = load_labelled([test])
    m = evaluate([x["score"] for x in lines], [r.strong_correct for r in labels],
                 [r.weak_correct for r in labels])
    assert m.saving95 == pytest.approx(report["router"]["saving95"])


def test_png_fallback_without_matplotlib(tmp_path: Path) -> None:
    from finops.routing import plot

    c = np.linspace(0, 1, 11)
    out = plot._raster(tmp_path / "r.png", [("a", c, 0.5 + 0.3 * c)], 0.76)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG") and b"IEND" in data
