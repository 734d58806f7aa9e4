"""The sync script regenerates the committed tables exactly from the installed genai-prices."""

from __future__ import annotations

import importlib.util
import json
import shutil
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import pytest

from finops.pricing import PriceBook, default_tables_dir

pytest.importorskip("genai_prices")
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "sync_prices.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_prices", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_tables_match_the_installed_genai_prices() -> None:
    manifest = json.loads((default_tables_dir() / "manifest.json").read_text())
    if manifest["source"] != f"genai-prices {version('genai-prices')}":
        pytest.skip(f"tables come from {manifest['source']}; run scripts/sync_prices.py")
    assert _script().main(["--check"]) == 0


def test_sync_writes_loadable_reviewable_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = _script()
    monkeypatch.setattr(sync, "OUT", tmp_path)
    (tmp_path / "stale-provider.json").write_text("{}")  # a provider genai-prices dropped
    assert sync.main([]) == 0
    assert not (tmp_path / "stale-provider.json").exists()
    shutil.copy(default_tables_dir() / "overrides.json", tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {"openai", "anthropic", "google", "mistral", "deepseek"} <= set(manifest["providers"])
    assert len(manifest["providers"]) == len(list(tmp_path.glob("*.json"))) - 3
    text = (tmp_path / "anthropic.json").read_text()
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    sonnet = next(m for m in json.loads(text)["models"] if m["id"] == "claude-sonnet-4-5")
    assert sonnet["prices"][-1]["prices"]["input_mtok"] == {"base": "3", "tiers": [[200000, "6"]]}
    assert PriceBook.load(tables_dir=tmp_path).validate_all() > 2000
    # a second run is a no-op and keeps the version (its date is when the content changed)
    assert sync.main(["--check"]) == 0
    assert json.loads((tmp_path / "manifest.json").read_text())["version"] == manifest["version"]
