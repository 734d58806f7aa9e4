"""Prices: versioned tables in ``pricing/`` → a Decimal cost for a normalized ``Usage``.

The tables are generated from genai-prices by ``scripts/sync_prices.py`` (never imported at run
time) and corrected by finops' reviewed ``pricing/overrides.json``; users add negotiated
discounts, custom and self-hosted models with ``overrides=`` (see docs/pricing.md).

How a :class:`~finops.usage.Usage` is priced: each disjoint component has one price key, with
a fallback chain when the model has no specific price (cached input without a cache price is
billed as input, a 1h cache write without a 1h price as a cache write, reasoning as output...).
A tiered price applies its tier to *all* tokens of that kind once the request's total input
exceeds the tier start. This is exactly genai-prices' arithmetic, checked in tests.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from finops.errors import PriceFileError, UnknownModelError
from finops.pricing.schema import ModelEntry, PriceSet, ProviderFile, ProviderInfo, TieredPrice
from finops.usage import Usage

__all__ = ["ModelRef", "PriceBook", "PricedCost", "UnitPrices", "default_tables_dir"]

_MTOK = Decimal(1_000_000)
_K = Decimal(1000)
_ZERO = Decimal(0)

# component -> price keys tried in order
_CHAINS: dict[str, tuple[str, ...]] = {
    "input_tokens": ("input_mtok",),
    "cache_read_tokens": ("cache_read_mtok", "input_mtok"),
    "cache_write_5m_tokens": ("cache_write_mtok", "input_mtok"),
    "cache_write_1h_tokens": ("cache_write_1h_mtok", "cache_write_mtok", "input_mtok"),
    "input_audio_tokens": ("input_audio_mtok", "input_mtok"),
    "cache_read_audio_tokens": (
        "cache_audio_read_mtok",
        "input_audio_mtok",
        "cache_read_mtok",
        "input_mtok",
    ),
    "output_tokens": ("output_mtok",),
    "reasoning_tokens": ("output_reasoning_mtok", "output_mtok"),
    "output_audio_tokens": ("output_audio_mtok", "output_mtok"),
}
_BUCKET = {
    "input_tokens": "input",
    "input_audio_tokens": "input",
    "cache_read_audio_tokens": "cache_read",
    "cache_read_tokens": "cache_read",
    "cache_write_5m_tokens": "cache_write",
    "cache_write_1h_tokens": "cache_write",
    "output_tokens": "output",
    "reasoning_tokens": "output",
    "output_audio_tokens": "output",
}
# server tool name (Usage.server_tool_requests) -> price key per thousand calls
_TOOL_KEYS = {"web_search": "web_searches_kcount", "file_search": "storage_searches_kcount"}


def default_tables_dir() -> Path:
    """The price tables shipped with finops (package data, else the repository's pricing/)."""
    packaged = Path(__file__).resolve().parent.parent / "pricing_data"
    if (packaged / "manifest.json").exists():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "pricing"


@dataclass(frozen=True, slots=True)
class PricedCost:
    """The cost of one response, by component, in USD (``Decimal``)."""

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    tools: Decimal
    steps: Decimal
    total: Decimal
    price_version: str
    model_ref: str | None
    provider: str | None
    status: str  # "priced" | "unknown_model" | "fallback:<model>"
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A resolved model: the provider and model id in the tables."""

    provider: str
    model_id: str
    entry: ModelEntry


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """Per-token USD prices for one model at one time and context size (for estimates)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal


def _match(clause: Mapping[str, Any], text: str) -> bool:
    if "equals" in clause:
        return text == str(clause["equals"])
    if "starts_with" in clause:
        return text.startswith(str(clause["starts_with"]))
    if "ends_with" in clause:
        return text.endswith(str(clause["ends_with"]))
    if "contains" in clause:
        return str(clause["contains"]) in text
    if "regex" in clause:
        return re.search(clause["regex"], text) is not None
    if "or" in clause:
        return any(_match(c, text) for c in clause["or"])
    if "and" in clause:
        return all(_match(c, text) for c in clause["and"])
    return False


def _active(constraint: Mapping[str, str] | None, at: datetime) -> bool:
    if constraint is None:
        return True
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    if "start_date" in constraint:
        return at.date().isoformat() >= constraint["start_date"]
    start = time.fromisoformat(constraint["start_time"]).replace(tzinfo=None)
    end = time.fromisoformat(constraint["end_time"]).replace(tzinfo=None)
    now = at.time().replace(tzinfo=None)
    if end < start:
        return now >= start or now < end
    return start <= now < end


def _rate(price: Decimal | TieredPrice, total_input: int) -> Decimal:
    if isinstance(price, TieredPrice):
        for start, tier_price in reversed(price.tiers):
            if total_input > start:
                return tier_price
        return price.base
    return price


def _percent(text: str) -> Decimal:
    value = Decimal(text.strip().rstrip("%"))
    if not 0 <= value <= 100:
        raise ValueError(f"a discount must be between 0% and 100%, got {text!r}")
    return value / 100


class PriceBook:
    """Versioned price tables; thread-safe and cheap to call once loaded."""

    _default: PriceBook | None = None
    _default_lock = threading.Lock()

    def __init__(
        self,
        folder: Path,
        order: list[str],
        info: dict[str, ProviderInfo],
        *,
        version: str,
        custom: dict[str, list[ModelEntry]],
        max_output: list[tuple[dict[str, Any], int]],
        discounts: list[tuple[str, str, Decimal]],
    ) -> None:
        self._folder = folder
        self._order = order
        self._info = info
        self._custom = custom
        self._files: dict[str, list[ModelEntry]] = {}
        self._files_lock = threading.Lock()
        self.version = version
        self._max_output = max_output
        self._discounts = discounts
        self._resolved: dict[tuple[str | None, str, str | None], ModelRef | None] = {}

    def _models(self, pid: str) -> list[ModelEntry]:
        """A provider's models: custom ones first, then its table (validated on first use)."""
        models = self._files.get(pid)
        if models is None:
            with self._files_lock:
                models = self._files.get(pid)
                if models is None:
                    models = list(self._custom.get(pid, ()))
                    if pid in self._info and (self._folder / f"{pid}.json").exists():
                        path = self._folder / f"{pid}.json"
                        try:
                            models += ProviderFile.model_validate(_read_json(path)).models
                        except ValidationError as exc:
                            raise PriceFileError(_explain(path, exc)) from exc
                    self._files[pid] = models
        return models

    def validate_all(self) -> int:
        """Load and validate every table now (the CLI and tests do); returns the model count."""
        return sum(len(self._models(pid)) for pid in self._order)

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def default(cls) -> PriceBook:
        """The shipped tables with finops' overrides (loaded once per process)."""
        if cls._default is None:
            with cls._default_lock:
                if cls._default is None:
                    cls._default = cls.load()
        return cls._default

    @classmethod
    def load(
        cls,
        *,
        tables_dir: str | Path | None = None,
        overrides: str | Path | Mapping[str, Any] | None = None,
    ) -> PriceBook:
        """Load and validate the tables in ``tables_dir`` plus user ``overrides``.

        Raises :class:`~finops.errors.PriceFileError` naming the file and the problem.
        """
        folder = Path(tables_dir) if tables_dir is not None else default_tables_dir()
        manifest = _read_json(folder / "manifest.json")
        try:
            order = [str(p) for p in manifest["providers"]]
            info = {
                pid: ProviderInfo.model_validate(manifest["provider_info"][pid]) for pid in order
            }
        except (KeyError, TypeError, ValidationError) as exc:
            raise PriceFileError(
                f"price manifest {folder / 'manifest.json'} is malformed ({exc!r}); regenerate it "
                f"with scripts/sync_prices.py"
            ) from exc
        version = str(manifest.get("version") or "unversioned")
        custom: dict[str, list[ModelEntry]] = {}
        max_output: list[tuple[dict[str, Any], int]] = []
        builtin = folder / "overrides.json"
        if builtin.exists():
            max_output, version = _apply_overrides(
                info, order, custom, _read_json(builtin), builtin, max_output, version
            )
        discounts: list[tuple[str, str, Decimal]] = []
        if overrides is not None:
            if isinstance(overrides, Mapping):
                data, where = dict(overrides), Path("<overrides>")
            else:
                where = Path(overrides)
                data = _read_user_overrides(where)
            max_output, version = _apply_overrides(
                info, order, custom, data, where, max_output, version
            )
            digest = hashlib.sha256(
                json.dumps(data, sort_keys=True, default=str).encode()
            ).hexdigest()[:8]
            version = f"{version}+user.{digest}"
            try:
                discounts = [
                    (*_split_scope(scope), _percent(str(pct)))
                    for scope, pct in (data.get("discounts") or {}).items()
                ]
            except (ValueError, ArithmeticError) as exc:
                raise PriceFileError(f"{where}: discounts: {exc}") from exc
        return cls(
            folder,
            order,
            info,
            version=version,
            custom=custom,
            max_output=max_output,
            discounts=discounts,
        )

    # -- lookups -------------------------------------------------------------------------
    def resolve(
        self, *, model: str, provider: str | None = None, api_url: str | None = None
    ) -> ModelRef | None:
        """Find a model in the tables (served ids like ``gpt-4o-2024-08-06`` resolve too)."""
        key = (provider, model, api_url)
        if key in self._resolved:
            return self._resolved[key]
        ref = self._resolve(model.lower(), provider, api_url)
        if len(self._resolved) < 10_000:
            self._resolved[key] = ref
        return ref

    def _resolve(self, model: str, provider: str | None, api_url: str | None) -> ModelRef | None:
        if provider is None:  # user-defined models win over the shipped tables
            for pid, entries in self._custom.items():
                for entry in entries:
                    if _match(entry.match, model):
                        return ModelRef(pid, entry.id, entry)
        candidates: list[str] = []
        if provider is not None:
            if provider in self._info:
                candidates.append(provider)
            else:
                candidates += [
                    pid
                    for pid in self._order
                    if (m := self._info[pid].provider_match) and _match(m, provider.lower())
                ]
        elif api_url:
            candidates += [
                pid
                for pid in self._order
                if (p := self._info[pid].api_pattern) and re.search(p, api_url)
            ]
        if provider is None and not candidates:
            candidates += [
                pid
                for pid in self._order
                if (m := self._info[pid].model_match) and _match(m, model)
            ]
        seen: set[str] = set()
        for pid in candidates:
            for ref in self._find(pid, model, seen):
                return ref
        return None

    def _find(self, pid: str, model: str, seen: set[str]) -> list[ModelRef]:
        if pid in seen or pid not in self._info:
            return []
        seen.add(pid)
        entries = self._models(pid)
        for entry in entries:
            if _match(entry.match, model):
                return [ModelRef(pid, entry.id, entry)]
        for entry in entries:  # a table's own canonical id always resolves
            if entry.id.lower() == model:
                return [ModelRef(pid, entry.id, entry)]
        for fallback in self._info[pid].fallback_model_providers:
            found = self._find(fallback, model, seen)
            if found:
                return found
        return []

    def max_output_tokens(self, *, provider: str | None, model: str) -> int | None:
        """The model's maximum output tokens, where known (for worst-case estimates)."""
        ref = self.resolve(model=model, provider=provider)
        if ref is not None and ref.entry.max_output_tokens:
            return ref.entry.max_output_tokens
        name = (ref.model_id if ref else model).lower()
        for clause, value in self._max_output:
            if _match(clause, name):
                return value
        return None

    def unit_prices(
        self, *, provider: str | None, model: str, at: datetime, input_tokens: int = 0
    ) -> UnitPrices | None:
        """Per-token prices for estimates, with the tier for ``input_tokens`` of context."""
        ref = self.resolve(model=model, provider=provider)
        if ref is None:
            return None
        prices = self._prices(ref.entry, at, None)

        def per_token(component: str) -> Decimal:
            for key in _CHAINS[component]:
                if key in prices:
                    return _rate(prices[key], input_tokens) / _MTOK
            return _ZERO

        return UnitPrices(
            input=per_token("input_tokens"),
            output=per_token("output_tokens"),
            cache_read=per_token("cache_read_tokens"),
            cache_write=per_token("cache_write_5m_tokens"),
        )

    # -- pricing -------------------------------------------------------------------------
    def price(
        self,
        *,
        provider: str | None,
        model: str,
        usage: Usage,
        at: datetime,
        service_tier: str | None = None,
        batch: bool = False,
        unknown: str = "zero_flagged",
    ) -> PricedCost:
        """The cost of ``usage`` on ``model`` at time ``at``.

        ``unknown`` is the policy for a model not in the tables: ``"raise"``
        (:class:`~finops.errors.UnknownModelError`), ``"zero_flagged"`` (zero cost, status
        ``unknown_model``) or ``"fallback:<model>"`` (priced as that model).
        """
        ref = self.resolve(model=model, provider=provider)
        status = "priced"
        if ref is None:
            if unknown.startswith("fallback:"):
                target = unknown.split(":", 1)[1]
                ref = self.resolve(model=target, provider=provider) or self.resolve(model=target)
                status = unknown
            if ref is None:
                if unknown == "raise":
                    raise UnknownModelError(
                        f"no price for model {model!r} (provider {provider or 'unknown'}) in price "
                        f"tables {self.version}; add it with price_overrides or choose another "
                        f"unknown_model policy",
                        provider=provider or "",
                        model=model,
                    )
                return PricedCost(
                    _ZERO,
                    _ZERO,
                    _ZERO,
                    _ZERO,
                    _ZERO,
                    _ZERO,
                    _ZERO,
                    self.version,
                    None,
                    provider,
                    "unknown_model",
                )
        context: dict[str, str] = {}
        if batch:
            context["processing"] = "batch"
        if service_tier:
            context["service_tier"] = service_tier
        prices = self._prices(ref.entry, at, context or None)
        parts = self._components(prices, usage)
        steps = _ZERO
        for step in usage.steps:
            step_cost = self.price(
                provider=ref.provider,
                model=step.model or ref.model_id,
                usage=step.usage,
                at=at,
                service_tier=service_tier,
                batch=batch,
                unknown=unknown,
            )
            steps += step_cost.total
        factor = self._discount(ref)
        if factor != 1:
            parts = {k: v * factor for k, v in parts.items()}
        total = sum(parts.values(), _ZERO) + steps
        return PricedCost(
            input=parts["input"],
            cache_read=parts["cache_read"],
            cache_write=parts["cache_write"],
            output=parts["output"],
            tools=parts["tools"],
            steps=steps,
            total=total,
            price_version=self.version,
            model_ref=ref.model_id,
            provider=ref.provider,
            status=status,
        )

    def _components(
        self, prices: Mapping[str, Decimal | TieredPrice], usage: Usage
    ) -> dict[str, Decimal]:
        total_input = usage.total_input_tokens
        parts = {
            "input": _ZERO,
            "cache_read": _ZERO,
            "cache_write": _ZERO,
            "output": _ZERO,
            "tools": _ZERO,
        }
        for component, chain in _CHAINS.items():
            count = getattr(usage, component)
            if not count:
                continue
            for key in chain:
                price = prices.get(key)
                if price is not None:
                    parts[_BUCKET[component]] += _rate(price, total_input) * count / _MTOK
                    break
        for tool, count in usage.server_tool_requests.items():
            tool_price = prices.get(_TOOL_KEYS.get(tool, f"{tool}_kcount"))
            if tool_price is not None and count:
                parts["tools"] += _rate(tool_price, total_input) * count / _K
        per_request = prices.get("requests_kcount")
        if per_request is not None:
            parts["tools"] += _rate(per_request, total_input) / _K
        return parts

    def _prices(
        self, entry: ModelEntry, at: datetime, context: Mapping[str, str] | None
    ) -> dict[str, Decimal | TieredPrice]:
        chosen: PriceSet = entry.prices[0]
        for candidate in reversed(entry.prices):
            if _active(candidate.constraint, at):
                chosen = candidate
                break
        if not context:
            return chosen.prices
        merged = dict(chosen.prices)
        overridden: set[str] = set()
        for variant in entry.variants:
            if not _active(variant.constraint, at):
                continue
            if any(context.get(k) != v for k, v in variant.when.items()):
                continue
            for key, value in variant.prices.items():
                if key not in overridden:
                    merged[key] = value
                    overridden.add(key)
        return merged

    def _discount(self, ref: ModelRef) -> Decimal:
        factor = Decimal(1)
        for provider, pattern, pct in self._discounts:
            if provider == ref.provider and fnmatch.fnmatchcase(ref.model_id, pattern):
                factor = 1 - pct  # the most specific (last) matching discount wins
        return factor


# -- file helpers ------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PriceFileError(
            f"price table {path} is missing; run scripts/sync_prices.py or reinstall finops"
        ) from exc
    except ValueError as exc:
        raise PriceFileError(
            f"price table {path} is not valid JSON ({exc}); fix or regenerate it"
        ) from exc


def _read_user_overrides(path: Path) -> dict[str, Any]:
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise PriceFileError(f"price overrides file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PriceFileError(f"price overrides file {path} is not valid TOML: {exc}") from exc
    data = _read_json(path)
    if not isinstance(data, dict):
        raise PriceFileError(f"price overrides file {path} must hold a JSON object")
    return data


def _explain(path: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return (
        f"price table {path} is malformed at {where}: {first['msg']} "
        f"({exc.error_count()} problem(s)); fix the file or regenerate it with scripts/sync_prices.py"
    )


def _split_scope(scope: str) -> tuple[str, str]:
    provider, _, pattern = scope.partition("/")
    return provider, pattern or "*"


def _gpu_hour_prices(spec: Mapping[str, Any]) -> dict[str, str]:
    """Self-hosted model: $/GPU-hour and measured throughput → $ per million tokens.

    price per MTok = usd_per_gpu_hour × gpus / 3600 / tokens_per_second × 1,000,000,
    separately for input (prefill) and output (decode) throughput.
    """
    hourly = Decimal(str(spec["usd_per_gpu_hour"])) * int(spec.get("gpus", 1))
    out: dict[str, str] = {}
    for key, rate in (
        ("input_mtok", "input_tokens_per_second"),
        ("output_mtok", "output_tokens_per_second"),
    ):
        tps = Decimal(str(spec.get(rate) or spec["tokens_per_second"]))
        if tps <= 0:
            raise ValueError(f"{rate} must be positive")
        out[key] = str(hourly / 3600 / tps * _MTOK)
    return out


def _apply_overrides(
    info: dict[str, ProviderInfo],
    order: list[str],
    custom: dict[str, list[ModelEntry]],
    data: Mapping[str, Any],
    where: Path,
    max_output: list[tuple[dict[str, Any], int]],
    version: str,
) -> tuple[list[tuple[dict[str, Any], int]], str]:
    """Register custom models and max-output rules; returns (max_output rules, version)."""
    try:
        rules = [(dict(r["match"]), int(r["value"])) for r in data.get("max_output_tokens") or []]
        for spec in data.get("models") or []:
            spec = dict(spec)
            pid = str(spec.pop("provider", "custom"))
            gpu = spec.pop("gpu_hour", None)
            prices = spec.pop("prices", None) or {}
            if gpu is not None:
                prices = {**_gpu_hour_prices(gpu), **prices}
            spec.pop("source", None)
            spec.setdefault("match", {"equals": str(spec["id"]).lower()})
            entry = ModelEntry.model_validate(
                {**spec, "prices": [{"constraint": None, "prices": prices}]}
            )
            if pid not in info:
                info[pid] = ProviderInfo(id=pid, name=pid)
                order.insert(0, pid)
            custom.setdefault(pid, []).insert(0, entry)
        if data.get("version"):
            version = f"{version}+{data['version']}"
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise PriceFileError(f"price overrides {where} are malformed: {exc!r}") from exc
    return rules + max_output, version
