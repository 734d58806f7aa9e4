"""The price book: versioned tables in ``pricing/`` → a Decimal cost for a normalized Usage.

How a :class:`~finops.usage.Usage` is priced (the same arithmetic as genai-prices, checked
to Decimal equality in ``tests/pricing``): every price key measures a *unit* with dimensions
(``pricing/units.json``; e.g. ``cache_read_mtok`` = input tokens of type cache_read). Each
disjoint usage component is a cell with full dimensions (uncached text input, cached audio
input, reasoning output, ...) and is billed at the most specific price of that model whose
dimensions contain the cell: cached input without a cache price is billed as input, a 1h
cache write without a 1h price as a cache write, reasoning as output, audio as text.
A tiered price applies its tier to *all* tokens of that kind once the request's total input
exceeds the tier start.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from finops.errors import ConfigError, PriceFileError, UnknownModelError, UnknownModelWarning
from finops.pricing.match import Predicate, compile_clause, normalize_compact_date
from finops.pricing.schema import (
    BuiltinOverrides,
    Constraint,
    CustomModel,
    Manifest,
    MaxOutputRule,
    ModelEntry,
    PriceSet,
    ProviderFile,
    ProviderInfo,
    TierDiscount,
    TieredPrice,
    UnitDef,
    UnitsFile,
    UserOverrides,
    parse_percent,
)
from finops.usage import Usage

__all__ = ["ModelRef", "PriceBook", "PricedCost", "UnitPrices", "default_tables_dir"]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_MAX_CACHED_LOOKUPS = 20_000
_M = TypeVar("_M", bound=BaseModel)

# Usage component -> (cost bucket, the cell's dimensions). Image/document input has no
# component of its own in Usage, so it is counted (and priced) as text input.
_CELLS: dict[str, tuple[str, dict[str, str]]] = {
    "input_tokens": ("input", {"direction": "input", "modality": "text"}),
    "cache_read_tokens": (
        "cache_read",
        {"direction": "input", "modality": "text", "token_type": "cache_read"},
    ),
    "cache_write_5m_tokens": (
        "cache_write",
        {"direction": "input", "modality": "text", "token_type": "cache_write", "cache_ttl": "5m"},
    ),
    "cache_write_1h_tokens": (
        "cache_write",
        {"direction": "input", "modality": "text", "token_type": "cache_write", "cache_ttl": "1h"},
    ),
    "input_audio_tokens": ("input", {"direction": "input", "modality": "audio"}),
    "cache_read_audio_tokens": (
        "cache_read",
        {"direction": "input", "modality": "audio", "token_type": "cache_read"},
    ),
    "output_tokens": ("output", {"direction": "output", "modality": "text"}),
    "reasoning_tokens": (
        "output",
        {"direction": "output", "modality": "text", "token_type": "reasoning"},
    ),
    "output_audio_tokens": ("output", {"direction": "output", "modality": "audio"}),
}
_BUCKETS = ("input", "cache_read", "cache_write", "output", "tools")
# Usage.server_tool_requests names -> unit (usage key) in units.json
_TOOL_UNITS = {
    "web_search": "web_searches",
    "web_search_requests": "web_searches",
    "file_search": "storage_searches",
    "storage_search": "storage_searches",
    "code_execution": "code_executions",
    "social_search": "social_searches",
}


def default_tables_dir() -> Path:
    """The price tables shipped with finops: package data (``finops/pricing_data``, what a
    wheel contains; a symlink to ``pricing/`` in a checkout), else the repository's
    ``pricing/`` folder."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "pricing_data"
    if (packaged / "manifest.json").exists():
        return packaged
    return here.parent / "pricing"


@dataclass(frozen=True, slots=True)
class PricedCost:
    """The cost of one response, by component, in USD (``Decimal``).

    ``input`` covers uncached text and audio input, ``output`` covers visible output,
    reasoning and audio output, ``tools`` per-call tool and per-request charges, ``steps``
    the extra billed steps (each at its own model). ``total`` is their sum.
    """

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
    """A resolved model: the provider whose table holds it and its canonical id.

    ``native`` is False when the model was found through a provider's fallback providers
    (e.g. an Anthropic model requested from AWS); request variants (batch, flex, priority)
    then do not apply, as in genai-prices.
    """

    provider: str
    model_id: str
    entry: ModelEntry
    native: bool = True


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """Per-token USD prices of one model at one time and context size (for estimates)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal = _ZERO
    reasoning: Decimal = _ZERO
    input_audio: Decimal = _ZERO
    output_audio: Decimal = _ZERO


Price = Decimal | TieredPrice


def _rate(price: Price, total_input: int) -> Decimal:
    if isinstance(price, TieredPrice):
        for start, tier_price in reversed(price.tiers):
            if total_input > start:
                return tier_price
        return price.base
    return price


def _scale(price: Price, factor: Decimal) -> Price:
    if isinstance(price, TieredPrice):
        return TieredPrice(
            base=price.base * factor, tiers=[(s, p * factor) for s, p in price.tiers]
        )
    return price * factor


@dataclass(frozen=True, slots=True)
class _Rates:
    """One resolved price set, compiled for fast pricing."""

    components: tuple[tuple[str, int, Price, int], ...]  # (usage field, bucket, price, per)
    tools: Mapping[str, tuple[Price, int]]  # tool name -> (price, per)
    per_request: tuple[Price, int] | None
    prices: Mapping[str, Price]


@dataclass(slots=True)
class _Compiled:
    """A resolved model with its constraints parsed and rates cached per context."""

    ref: ModelRef
    sets: tuple[tuple[Constraint | None, PriceSet], ...]
    variants: tuple[tuple[dict[str, str], Constraint | None, Mapping[str, Price]], ...]
    tier_rules: tuple[TierDiscount, ...]
    discount: Decimal
    cache: dict[tuple[Any, ...], _Rates] = field(default_factory=dict)


def _active(constraint: Constraint | None, day: date, now: time) -> bool:
    if constraint is None:
        return True
    if constraint.start_date is not None:
        return day >= constraint.start_date
    start, end = constraint.start_time, constraint.end_time
    assert start is not None and end is not None  # schema: a window has both ends
    if end < start:
        return now >= start or now < end
    return start <= now < end


class PriceBook:
    """Versioned price tables; thread-safe, and cheap to call once a model is resolved.

    Use :meth:`load` (or :meth:`default` for the shipped tables). Provider tables are read
    and validated on first use, so loading costs only the manifest.
    """

    _default: PriceBook | None = None
    _default_lock = threading.Lock()

    def __init__(
        self,
        *,
        folder: Path,
        manifest: Manifest,
        units: Mapping[str, UnitDef],
        builtin: BuiltinOverrides | None,
        user: UserOverrides | None,
        version: str,
    ) -> None:
        """Use :meth:`load`; this constructor takes already validated parts."""
        self.version = version
        self._folder = folder
        self._units = dict(units)
        self._units_by_price_key = {u.price_key: (key, u) for key, u in units.items()}
        self._order = list(manifest.providers)
        self._info: dict[str, ProviderInfo] = dict(manifest.provider_info)
        self._custom: dict[str, list[ModelEntry]] = {}
        self._files: dict[str, list[tuple[Predicate, ModelEntry]]] = {}
        self._files_lock = threading.Lock()
        self._resolved: dict[tuple[str | None, str, str | None], ModelRef | None] = {}
        self._compiled: dict[tuple[int, bool], _Compiled] = {}
        self._warned: set[tuple[str | None, str]] = set()
        self._guess = [
            (pid, compile_clause(info.model_match))
            for pid, info in self._info.items()
            if info.model_match is not None
        ]
        self._corrections: dict[tuple[str, str], dict[str, Price]] = {}
        self._tier_rules: list[tuple[TierDiscount, Predicate | None]] = []
        self._max_output: list[tuple[Predicate, int]] = []
        self._discounts: list[tuple[str, str, Decimal]] = []
        if builtin is not None:
            for c in builtin.corrections:
                self._corrections.setdefault((c.provider, c.model), {}).update(c.prices)
            self._tier_rules = [
                (r, compile_clause(r.match) if r.match else None) for r in builtin.tier_discounts
            ]
        user_rules: list[MaxOutputRule] = []
        if user is not None:
            user_rules = list(user.max_output_tokens)
            for scope, pct in user.discounts.items():
                provider, _, pattern = scope.partition("/")
                self._discounts.append((provider, (pattern or "*").lower(), parse_percent(pct)))
            for custom in user.models:
                self._add_custom(custom)
        for rule in user_rules + list(builtin.max_output_tokens if builtin else []):
            self._max_output.append((compile_clause(rule.match), rule.value))

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def default(cls) -> PriceBook:
        """The shipped tables with finops' reviewed overrides (loaded once per process)."""
        book = cls._default
        if book is None:
            with cls._default_lock:
                book = cls._default
                if book is None:
                    book = cls._default = cls.load()
        return book

    @classmethod
    def load(
        cls,
        *,
        tables_dir: str | Path | None = None,
        overrides: str | Path | Mapping[str, Any] | None = None,
    ) -> PriceBook:
        """Load the tables in ``tables_dir`` (default: shipped) plus user ``overrides``.

        ``overrides``: a mapping, or the path of a JSON or TOML file, with ``discounts``
        (``{"openai": "10%", "anthropic/claude-*": "15%"}``), ``models`` (custom models with
        per-MTok ``prices`` and/or ``gpu_hour``) and ``max_output_tokens`` rules; see
        docs/pricing.md. Raises :class:`~finops.errors.PriceFileError` naming the file, the
        field and what to do.
        """
        folder = Path(tables_dir) if tables_dir is not None else default_tables_dir()
        manifest = _validated(
            Manifest, _read_json(folder / "manifest.json"), folder / "manifest.json"
        )
        units = _validated(
            UnitsFile, _read_json(folder / "units.json"), folder / "units.json"
        ).units
        version = manifest.version
        builtin: BuiltinOverrides | None = None
        builtin_path = folder / "overrides.json"
        if builtin_path.exists():
            builtin = _validated(BuiltinOverrides, _read_json(builtin_path), builtin_path)
            version = f"{version}+{builtin.version}"
        user: UserOverrides | None = None
        if overrides is not None:
            if isinstance(overrides, Mapping):
                data, where = dict(overrides), Path("<overrides mapping>")
            else:
                where = Path(overrides)
                data = _read_user_overrides(where)
            user = _validated(UserOverrides, data, where)
            digest = hashlib.sha256(
                json.dumps(data, sort_keys=True, default=str).encode()
            ).hexdigest()[:10]
            version = f"{version}+user.{digest}"
        book = cls(
            folder=folder,
            manifest=manifest,
            units=units,
            builtin=builtin,
            user=user,
            version=version,
        )
        if builtin is not None:
            book._check_keys(builtin_path, [c.prices for c in builtin.corrections])
        if user is not None:
            book._check_keys(
                where, [e.prices[0].prices for es in book._custom.values() for e in es]
            )
        return book

    def _add_custom(self, custom: CustomModel) -> None:
        prices: dict[str, Price] = {}
        if custom.gpu_hour is not None:
            prices.update(custom.gpu_hour.prices())
        prices.update(custom.prices)
        entry = ModelEntry(
            id=custom.id,
            match=custom.match or {"equals": custom.id},
            context_window=custom.context_window,
            max_output_tokens=custom.max_output_tokens,
            prices=[PriceSet(prices=prices)],
        )
        pid = custom.provider
        if pid not in self._info:
            self._info[pid] = ProviderInfo(id=pid, name=pid)
            self._order.insert(0, pid)
        self._custom.setdefault(pid, []).insert(0, entry)

    def _check_keys(self, path: Path, price_maps: Sequence[Mapping[str, Price]]) -> None:
        for prices in price_maps:
            unknown = sorted(k for k in prices if k not in self._units_by_price_key)
            if unknown:
                raise PriceFileError(
                    f"{path}: unknown price key(s) {unknown}; use keys listed in "
                    f"pricing/units.json (e.g. input_mtok, output_mtok, cache_read_mtok)"
                )

    def _models(self, pid: str) -> list[tuple[Predicate, ModelEntry]]:
        """A provider's models, custom ones first, then its table (validated on first use)."""
        models = self._files.get(pid)
        if models is not None:
            return models
        with self._files_lock:
            models = self._files.get(pid)
            if models is None:
                entries = list(self._custom.get(pid, ()))
                path = self._folder / f"{pid}.json"
                if pid in self._order and path.exists():
                    table = _validated(ProviderFile, _read_json(path), path)
                    self._check_keys(
                        path,
                        [s.prices for m in table.models for s in m.prices]
                        + [v.prices for m in table.models for v in m.variants],
                    )
                    entries += [self._corrected(pid, m) for m in table.models]
                models = [(compile_clause(e.match), e) for e in entries]
                self._files[pid] = models
        return models

    def _corrected(self, pid: str, entry: ModelEntry) -> ModelEntry:
        fix = self._corrections.get((pid, entry.id))
        if not fix:
            return entry
        sets = [PriceSet(constraint=s.constraint, prices={**s.prices, **fix}) for s in entry.prices]
        return entry.model_copy(update={"prices": sets})

    def validate_all(self) -> int:
        """Load and validate every table now (the CLI and tests do); returns the model count."""
        return sum(len(self._models(pid)) for pid in self._order)

    # -- lookups -------------------------------------------------------------------------
    def resolve(
        self, *, model: str, provider: str | None = None, api_url: str | None = None
    ) -> ModelRef | None:
        """Find a model (served ids like ``gpt-4o-2024-08-06`` resolve too).

        ``provider`` may be None: it is then guessed from ``api_url`` (e.g.
        ``https://api.deepseek.com``) or from the model id.
        """
        key = (provider, model, api_url)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        ref = self._resolve(model.lower(), provider, api_url)
        if len(self._resolved) < _MAX_CACHED_LOOKUPS:
            self._resolved[key] = ref
        return ref

    def _resolve(self, model: str, provider: str | None, api_url: str | None) -> ModelRef | None:
        if provider is None:  # the user's own models win over the shipped tables
            for custom_pid in self._custom:
                for matches, entry in self._models(custom_pid):
                    if matches(model):
                        return ModelRef(custom_pid, entry.id, entry)
        pid = self._provider_for(model, provider, api_url)
        if pid is None:
            return None
        found = self._find(pid, model)
        if found is None:
            normalized = normalize_compact_date(model)
            if normalized != model:
                found = self._find(pid, normalized)
        if found is None:  # a table's own canonical id always resolves
            for _, entry in self._models(pid):
                if entry.id.lower() == model:
                    return ModelRef(pid, entry.id, entry)
        return found

    def _provider_for(self, model: str, provider: str | None, api_url: str | None) -> str | None:
        if provider is not None:
            wanted = provider.lower().strip()
            if wanted in self._info:
                return wanted
            for pid in self._order:
                m = self._info[pid].provider_match
                if m is not None and compile_clause(m)(wanted):
                    return pid
            return None
        if api_url:
            for pid in self._order:
                pattern = self._info[pid].api_pattern
                if pattern and re.match(pattern, api_url):
                    return pid
        for pid, matches in self._guess:
            if matches(model):
                return pid
        return None

    def _find(self, pid: str, model: str) -> ModelRef | None:
        for matches, entry in self._models(pid):
            if matches(model):
                return ModelRef(pid, entry.id, entry)
        for fallback in self._info[pid].fallback_model_providers:  # one step, as genai-prices
            if fallback in self._info:
                for matches, entry in self._models(fallback):
                    if matches(model):
                        return ModelRef(fallback, entry.id, entry, native=False)
        return None

    def has_provider(self, provider: str) -> bool:
        """Whether the tables (or the user's custom models) have provider id ``provider``."""
        return provider in self._info

    def provider_ids(self) -> list[str]:
        """Every provider id with a table or custom models, in lookup order."""
        return list(self._order)

    def max_output_tokens(self, *, provider: str | None, model: str) -> int | None:
        """The model's maximum output tokens, where known (for worst-case estimates)."""
        ref = self.resolve(model=model, provider=provider)
        if ref is not None and ref.entry.max_output_tokens is not None:
            return ref.entry.max_output_tokens
        names = [ref.model_id.lower()] if ref is not None else []
        names.append(model.lower())
        for name in names:
            for matches, value in self._max_output:
                if matches(name):
                    return value
        return None

    def unit_prices(
        self, *, provider: str | None, model: str, at: datetime, input_tokens: int = 0
    ) -> UnitPrices | None:
        """Per-token prices for worst-case estimates, with the tier that ``input_tokens`` of
        total input would hit. None for an unknown model."""
        ref = self.resolve(model=model, provider=provider)
        if ref is None:
            return None
        rates = self._rates(self._compile(ref), at, ())
        per_token = {
            name: _rate(price, input_tokens) / per for name, _, price, per in rates.components
        }

        def get(name: str) -> Decimal:
            return per_token.get(name, _ZERO)

        return UnitPrices(
            input=get("input_tokens"),
            output=get("output_tokens"),
            cache_read=get("cache_read_tokens"),
            cache_write=get("cache_write_5m_tokens"),
            cache_write_1h=get("cache_write_1h_tokens"),
            reasoning=get("reasoning_tokens"),
            input_audio=get("input_audio_tokens"),
            output_audio=get("output_audio_tokens"),
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
        """The cost of ``usage`` on ``model`` at time ``at`` (naive times are UTC).

        ``service_tier`` (``"flex"``, ``"priority"``...) and ``batch`` select the provider's
        price variants. ``unknown`` is the policy for a model not in the tables:
        ``"raise"`` (:class:`~finops.errors.UnknownModelError`), ``"zero_flagged"`` (zero
        cost, status ``unknown_model``, one :class:`~finops.errors.UnknownModelWarning` per
        model) or ``"fallback:<model>"`` (priced as that model). Each of ``usage.steps`` is
        priced at its own model and reported in ``steps``.
        """
        ref = self.resolve(model=model, provider=provider)
        status = "priced"
        if ref is None:
            ref, status = self._unknown(model, provider, unknown)
            if ref is None:
                zero = _ZERO
                return PricedCost(
                    zero, zero, zero, zero, zero, zero, zero, self.version, None, provider, status
                )
        compiled = self._compile(ref)
        context: tuple[tuple[str, str], ...] = ()
        if batch or service_tier:
            pairs = [("processing", "batch")] if batch else []
            if service_tier:
                pairs.append(("service_tier", service_tier))
            context = tuple(pairs)
        rates = self._rates(compiled, at, context)
        total_input = usage.total_input_tokens
        parts = [_ZERO, _ZERO, _ZERO, _ZERO, _ZERO]
        for name, bucket, price, per in rates.components:
            count = getattr(usage, name)
            if count:
                rate = _rate(price, total_input) if type(price) is TieredPrice else price
                parts[bucket] += rate * count / per
        if usage.server_tool_requests:
            for tool, count in usage.server_tool_requests.items():
                spec = rates.tools.get(tool)
                if spec is not None and count:
                    parts[4] += _rate(spec[0], total_input) * count / spec[1]
        if rates.per_request is not None:
            parts[4] += _rate(rates.per_request[0], total_input) / rates.per_request[1]
        if compiled.discount != _ONE:
            parts = [p * compiled.discount for p in parts]
        steps = _ZERO
        for step in usage.steps:
            steps += self.price(
                provider=ref.provider,
                model=step.model or ref.model_id,
                usage=step.usage,
                at=at,
                service_tier=service_tier,
                batch=batch,
                unknown=unknown,
            ).total
        return PricedCost(
            input=parts[0],
            cache_read=parts[1],
            cache_write=parts[2],
            output=parts[3],
            tools=parts[4],
            steps=steps,
            total=parts[0] + parts[1] + parts[2] + parts[3] + parts[4] + steps,
            price_version=self.version,
            model_ref=ref.model_id,
            provider=ref.provider,
            status=status,
        )

    def _unknown(
        self, model: str, provider: str | None, policy: str
    ) -> tuple[ModelRef | None, str]:
        if policy == "raise":
            raise UnknownModelError(
                f"finops has no price for model {model!r} (provider {provider or 'not given'}) "
                f"in price tables {self.version}. Add it under 'models' in your price "
                f"overrides, or use unknown='zero_flagged' or 'fallback:<model>'.",
                provider=provider or "",
                model=model,
            )
        if policy.startswith("fallback:"):
            target = policy.split(":", 1)[1]
            ref = self.resolve(model=target, provider=provider) or self.resolve(model=target)
            if ref is not None:
                return ref, policy
        elif policy != "zero_flagged":
            raise ConfigError(
                f"unknown-model policy {policy!r} is not one of 'raise', 'zero_flagged', "
                f"'fallback:<model>'"
            )
        key = (provider, model)
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(
                f"finops: no price for model {model!r} (provider {provider or 'not given'}); "
                f"recorded at zero cost with status 'unknown_model'. Add it to your price "
                f"overrides, or use the 'fallback:<model>' or 'raise' policy.",
                UnknownModelWarning,
                stacklevel=3,
            )
        return None, "unknown_model"

    # -- compiled rates ----------------------------------------------------------------------
    def _compile(self, ref: ModelRef) -> _Compiled:
        compiled = self._compiled.get((id(ref.entry), ref.native))
        if compiled is not None:
            return compiled
        entry = ref.entry
        name = ref.model_id.lower()
        discount = _ONE
        best = -1
        for provider, pattern, pct in self._discounts:
            if provider in (ref.provider, "*") and fnmatch.fnmatchcase(name, pattern):
                # the most specific scope wins: a model pattern beats a provider-wide one
                specificity = len(pattern.replace("*", "")) + (provider != "*")
                if specificity >= best:
                    best, discount = specificity, _ONE - pct
        compiled = _Compiled(
            ref=ref,
            sets=tuple((s.constraint, s) for s in entry.prices),
            variants=tuple((v.when, v.constraint, v.prices) for v in entry.variants)
            if ref.native
            else (),
            tier_rules=tuple(
                rule
                for rule, matches in self._tier_rules
                if rule.provider == ref.provider and (matches is None or matches(name))
            ),
            discount=discount,
        )
        if len(self._compiled) < _MAX_CACHED_LOOKUPS:
            self._compiled[(id(ref.entry), ref.native)] = compiled
        return compiled

    def _rates(
        self, compiled: _Compiled, at: datetime, context: tuple[tuple[str, str], ...]
    ) -> _Rates:
        if at.tzinfo is not None and at.utcoffset():
            at = at.astimezone(UTC)
        day, now = at.date(), at.time()
        chosen = 0
        sets = compiled.sets
        if len(sets) > 1 or sets[0][0] is not None:
            for index in range(len(sets) - 1, -1, -1):
                if _active(sets[index][0], day, now):
                    chosen = index
                    break
        variants: tuple[int, ...] = ()
        rules: tuple[int, ...] = ()
        if context:
            ctx = dict(context)
            variants = tuple(
                i
                for i, (when, constraint, _) in enumerate(compiled.variants)
                if all(ctx.get(k) == v for k, v in when.items()) and _active(constraint, day, now)
            )
            covered = [compiled.variants[i][0] for i in variants]
            rules = tuple(
                i
                for i, rule in enumerate(compiled.tier_rules)
                if all(ctx.get(k) == v for k, v in rule.when.items()) and rule.when not in covered
            )
        key = (chosen, variants, rules)
        rates = compiled.cache.get(key)
        if rates is None:
            prices: dict[str, Price] = dict(sets[chosen][1].prices)
            overridden: set[str] = set()
            for i in variants:  # first matching variant wins per price key
                for k, v in compiled.variants[i][2].items():
                    if k not in overridden:
                        prices[k] = v
                        overridden.add(k)
            for i in rules:
                factor = _ONE - compiled.tier_rules[i].percent / 100
                for k in list(prices):
                    unit = self._units_by_price_key.get(k)
                    if unit is not None and unit[1].dimensions.get("family") == "tokens":
                        prices[k] = _scale(prices[k], factor)
            rates = compiled.cache[key] = self._build_rates(prices)
        return rates

    def _build_rates(self, prices: Mapping[str, Price]) -> _Rates:
        priced = [
            (self._units_by_price_key[k][1], p)
            for k, p in prices.items()
            if k in self._units_by_price_key
        ]
        components: list[tuple[str, int, Price, int]] = []
        for name, (bucket, dims) in _CELLS.items():
            cell = {"family": "tokens", **dims}
            best: tuple[UnitDef, Price] | None = None
            for unit, price in priced:
                if unit.dimensions.items() <= cell.items() and (
                    best is None or len(unit.dimensions) > len(best[0].dimensions)
                ):
                    best = (unit, price)
            if best is not None:
                components.append((name, _BUCKETS.index(bucket), best[1], best[0].per))
        tools: dict[str, tuple[Price, int]] = {}
        for tool, usage_key in _TOOL_UNITS.items():
            tool_unit = self._units.get(usage_key)
            if tool_unit is not None and tool_unit.price_key in prices:
                tools[tool] = tools[usage_key] = (prices[tool_unit.price_key], tool_unit.per)
        request_unit = self._units.get("requests")
        per_request = None
        if request_unit is not None and request_unit.price_key in prices:
            per_request = (prices[request_unit.price_key], request_unit.per)
        return _Rates(tuple(components), tools, per_request, dict(prices))


# -- file helpers ------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PriceFileError(
            f"price file {path} is missing; run scripts/sync_prices.py (or reinstall finops)"
        ) from exc
    except ValueError as exc:
        raise PriceFileError(
            f"price file {path} is not valid JSON ({exc}); fix it or regenerate it with "
            f"scripts/sync_prices.py"
        ) from exc


def _read_user_overrides(path: Path) -> Any:
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise PriceFileError(f"price overrides file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PriceFileError(
                f"price overrides file {path} is not valid TOML ({exc}); fix it"
            ) from exc
    return _read_json(path)


def _validated(model: type[_M], data: Any, path: Path) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        hint = (
            "fix your overrides (see docs/pricing.md)"
            if model is UserOverrides
            else "fix the file or regenerate it with scripts/sync_prices.py"
        )
        msg = str(first["msg"])
        if first["type"] == "extra_forbidden" and first["loc"]:
            msg += f" (`{first['loc'][-1]}` is not a known key{_did_you_mean(model, first['loc'])})"
        raise PriceFileError(
            f"price file {path} is malformed at {where}: {msg} "
            f"({exc.error_count()} problem(s) in all); {hint}"
        ) from exc


def _did_you_mean(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """Walk ``loc`` down the schema to the model that refused the key; suggest a close one."""
    import difflib

    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not isinstance(current, type):
            continue
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return ""
        annotation = fields[part].annotation
        current = _model_in(annotation)
    names = list(getattr(current, "model_fields", {})) if isinstance(current, type) else []
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside ``list[M]`` / ``M | None`` / ``dict[str, M]``, if any."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
