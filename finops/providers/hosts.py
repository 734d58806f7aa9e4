"""Which provider served a call, from the client's ``base_url`` — never a silent guess.

An OpenAI-compatible client can point at dozens of hosts (Groq, Cerebras, OpenRouter, Azure,
Bedrock's OpenAI endpoint, a gateway...). The same model id can be on several of them at
different prices (``gpt-oss-120b`` on Cerebras costs a fifth of OpenAI's price), so the
price table is chosen by the *host*, from a reviewed data file (``data/hosts.json``):

* a **known host** is priced from its provider's table only (with the fallback providers
  that table itself declares, e.g. Azure → OpenAI); a model missing from it is
  ``unknown_model``, never looked up in another provider's table;
* a host **known without a price table** (``label``: SambaNova, DeepInfra...) is named on
  the row and priced nothing (``unknown_model``) unless the user maps it;
* a **family** host (Hugging Face's router) picks the table per call from the URL path
  (``/cerebras/v1``) or the model's ``:provider`` suffix (``openai/gpt-oss-120b:cerebras``);
* **self-hosted** servers (Ollama on port 11434, LM Studio on 1234, or any host the user
  maps to ``"self_hosted"``) cost nothing unless ``price_overrides`` defines the model under
  that provider (e.g. at $/GPU-hour): status ``self_hosted``;
* a **loopback** server on another port (``finops.DevServer``, a local gateway) speaks the
  wire's own API and is priced from the wire's table (``openai`` / ``anthropic``) only;
* an **unknown host** is priced only under an explicit rule: ``FinOps(providers=
  {"my-gateway.internal": "groq"})``. Without one, the documented fallback applies: the
  provider is guessed from the model id and the row is flagged ``pricing_status =
  "host_unknown:<guessed provider>"`` (``providers={"*": "none"}`` records such calls at
  zero cost as ``unknown_model`` instead; ``{"*": "<provider>"}`` names one provider for
  every unknown host). The row's ``provider`` is then the host name itself.

User rules win over the shipped ones. Keys are a host (``gw.internal``), a host and port
(``localhost:8000``), a domain suffix (``*.corp.example``) or a URL prefix
(``https://gw.internal/groq``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from finops.errors import ConfigError

if TYPE_CHECKING:
    from finops.ledger.row import LedgerRow
    from finops.pricing import PriceBook, PricedCost
    from finops.providers.base import Parsed
    from finops.usage import Usage

__all__ = [
    "HostMap",
    "HostRoute",
    "amend_row",
    "explain_host_cost",
    "host_cost",
    "load_host_data",
    "price_on_host",
    "route_for",
]

_DATA = Path(__file__).resolve().parent / "data" / "hosts.json"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "[::1]"})
_ZERO = Decimal(0)

#: ``providers={"*": ...}`` values that are policies rather than provider ids.
_GUESS = "guess"
_NONE = "none"


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str  # host | suffix | regex
    pattern: str
    provider: str | None
    label: str
    family: str | None
    regex: re.Pattern[str] | None = None

    def matches(self, host: str) -> bool:
        if self.kind == "host":
            return host == self.pattern
        if self.kind == "suffix":
            return host == self.pattern or host.endswith("." + self.pattern)
        assert self.regex is not None
        return self.regex.fullmatch(host) is not None


@dataclass(frozen=True, slots=True)
class HostData:
    """The shipped host map (``finops/providers/data/hosts.json``)."""

    version: str
    rules: tuple[_Rule, ...]
    self_hosted: frozenset[str]
    ports: Mapping[int, str]
    family_aliases: Mapping[str, str]


@lru_cache(maxsize=4)
def load_host_data(path: str | None = None) -> HostData:
    """Read and check a host map file (default: the shipped one; read once per process)."""
    file = Path(path) if path is not None else _DATA
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"host map {file} could not be read ({exc}); reinstall finops") from exc
    rules: list[_Rule] = []
    for i, item in enumerate(raw.get("rules", ())):
        kinds = [k for k in ("host", "suffix", "regex") if k in item]
        if len(kinds) != 1:
            raise ConfigError(f"host map {file}: rule {i} needs exactly one of host/suffix/regex")
        kind = kinds[0]
        pattern = str(item[kind]).lower()
        provider = item.get("provider")
        family = item.get("family")
        label = item.get("label") or provider or family
        if not label:
            raise ConfigError(f"host map {file}: rule {i} ({pattern}) names no provider")
        rules.append(
            _Rule(
                kind=kind,
                pattern=pattern,
                provider=provider,
                label=str(label),
                family=family,
                regex=re.compile(pattern) if kind == "regex" else None,
            )
        )
    return HostData(
        version=str(raw.get("version", "")),
        rules=tuple(rules),
        self_hosted=frozenset(raw.get("self_hosted", ())),
        ports={int(k): str(v) for k, v in dict(raw.get("ports", {})).items()},
        family_aliases=dict(raw.get("family_aliases", {})),
    )


@dataclass(frozen=True, slots=True)
class HostRoute:
    """How calls through one client (one ``base_url``) are attributed and priced.

    ``label`` goes on the row's ``provider`` column. ``provider`` is the price table
    (None for an unknown host without a rule; then ``fallback`` applies). ``rule`` says why:
    ``builtin`` | ``user`` | ``loopback`` | ``self_hosted`` | ``unknown``.
    """

    host: str
    label: str
    provider: str | None
    rule: str
    family: str | None = None
    fallback: str = _GUESS
    self_hosted: bool = False
    path: str = ""
    #: Azure-style deployment names → the model they serve (used when the response does
    #: not name the model, and for the requested model before the call).
    deployments: tuple[tuple[str, str], ...] = ()
    #: Azure deployment types (``global`` | ``data_zone`` | ``regional``) by deployment name,
    #: ``"*"`` for every deployment of the resource. Only from the user's config: neither
    #: the URL nor the response says how a deployment was created.
    deployment_types: tuple[tuple[str, str], ...] = ()

    def deployment_type(self, name: str | None) -> str | None:
        """The configured deployment type of deployment ``name`` (or of the resource)."""
        default = None
        for deployment, kind in self.deployment_types:
            if deployment == name:
                return kind
            if deployment == "*":
                default = kind
        return default

    def model_for(self, name: str) -> str:
        """The model a deployment name stands for (the name itself if not mapped)."""
        for deployment, model in self.deployments:
            if deployment == name:
                return model
        return name

    @property
    def known(self) -> bool:
        """Whether a rule (shipped or the user's) names this host's provider."""
        return self.rule != "unknown"

    def pick(self, model: str, tables: Callable[[str], bool]) -> tuple[str | None, str]:
        """(price provider, model id to price) for one call; ``tables(pid)`` says whether a
        price table ``pid`` exists. Family hosts choose per call; others are fixed."""
        if self.family is None:
            return self.provider, self.model_for(model) if self.deployments else model
        # Hugging Face router: /<provider>/v1/... or model "org/name:<provider>"
        base, sep, suffix = model.rpartition(":")
        data = load_host_data()
        candidates: list[tuple[str, str]] = []
        if sep and suffix and "/" not in suffix:
            candidates.append((data.family_aliases.get(suffix, suffix), base))
        segment = self.path.strip("/").split("/", 1)[0]
        if segment and segment not in ("v1", "v1beta"):
            candidates.append((data.family_aliases.get(segment, segment), model))
        for sub, name in candidates:
            if tables(self.family + sub):
                return self.family + sub, name
        return None, base if sep and "/" not in suffix else model


class HostMap:
    """The shipped host rules plus the user's ``providers=`` mapping, resolved per client.

    Raises :class:`~finops.errors.ConfigError` at construction for a malformed mapping;
    ``known_providers`` (the price tables' ids), when given, is used to reject a mapping to
    a provider finops has no table for (a typo would otherwise price every call at zero).
    """

    def __init__(
        self,
        providers: Mapping[str, Any] | None = None,
        *,
        known_providers: frozenset[str] | None = None,
        data: HostData | None = None,
    ) -> None:
        self._data = data or load_host_data()
        self._user: list[
            tuple[str, str, str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]
        ] = []
        self._fallback = _GUESS
        self._fallback_provider: str | None = None
        if providers is None:
            return
        if not isinstance(providers, Mapping):
            raise ConfigError(
                "providers= must be a mapping of host -> price provider, e.g. "
                '{"my-gateway.internal": "groq"}'
            )
        for key, spec in providers.items():
            value, deployments, types = _spec(key, spec)
            if not isinstance(key, str) or not isinstance(value, str) or not key or not value:
                raise ConfigError(
                    f"providers={{{key!r}: {value!r}}}: keys are hosts (or host:port, "
                    f"*.domain, URL prefixes) and values provider ids, both non-empty strings"
                )
            value = value.strip().lower()
            if key == "*":
                if value in (_GUESS, _NONE):
                    self._fallback = value
                else:
                    self._check(key, value, known_providers)
                    self._fallback, self._fallback_provider = "provider", value
                continue
            self._check(key, value, known_providers)
            k = key.strip().lower()
            if "/" in k:
                self._user.append(("prefix", k.rstrip("/"), value, deployments, types))
            elif k.startswith("*."):
                self._user.append(("suffix", k[2:], value, deployments, types))
            elif k.startswith("."):
                self._user.append(("suffix", k[1:], value, deployments, types))
            else:
                self._user.append(("host", k, value, deployments, types))

    def _check(self, key: str, value: str, known: frozenset[str] | None) -> None:
        if known is None or value in known or value in self._data.self_hosted:
            return
        raise ConfigError(
            f"providers={{{key!r}: {value!r}}}: finops has no price table {value!r}. Use one "
            f"of {', '.join(sorted(known))}, or 'self_hosted' (zero cost unless "
            f"price_overrides defines the model under that provider)"
        )

    def route(self, base_url: str, *, wire: str) -> HostRoute:
        """The route for a client with this ``base_url`` speaking ``wire``."""
        parts = urlsplit(base_url if "//" in base_url else "//" + base_url)
        host = (parts.hostname or "").lower()
        port = parts.port
        path = parts.path or ""
        full = f"{host}:{port}" if port else host
        url = base_url.lower().rstrip("/")
        for kind, key, provider, deployments, types in self._user:
            hit = (
                (kind == "host" and key in (host, full))
                or (kind == "suffix" and (host == key or host.endswith("." + key)))
                or (
                    kind == "prefix"
                    and (url.startswith(key) or url.split("://", 1)[-1].startswith(key))
                )
            )
            if hit:
                return HostRoute(
                    host=full,
                    label=provider,
                    provider=provider,
                    rule="user",
                    self_hosted=provider in self._data.self_hosted,
                    path=path,
                    deployments=deployments,
                    deployment_types=types,
                )
        for rule in self._data.rules:
            if rule.matches(host):
                return HostRoute(
                    host=full,
                    label=rule.label if rule.family is None else _family_label(rule, path),
                    provider=rule.provider,
                    rule="builtin",
                    family=rule.family,
                    path=path,
                )
        if port is not None and port in self._data.ports:
            name = self._data.ports[port]
            return HostRoute(
                host=full, label=name, provider=name, rule="self_hosted", self_hosted=True
            )
        if host in _LOOPBACK or not host:
            return HostRoute(host=full, label=wire, provider=wire, rule="loopback")
        if self._fallback == "provider":
            return HostRoute(
                host=full, label=full, provider=self._fallback_provider, rule="user", path=path
            )
        return HostRoute(
            host=full, label=full, provider=None, rule="unknown", fallback=self._fallback
        )


#: Azure's published premium of Data Zone and Regional standard deployments over Global
#: (pay-as-you-go token prices; the Azure price table holds the Global prices).
AZURE_UPLIFT = {"global": Decimal(1), "data_zone": Decimal("1.10"), "regional": Decimal("1.10")}
_Pairs = tuple[tuple[str, str], ...]


def _spec(key: object, spec: object) -> tuple[object, _Pairs, _Pairs]:
    """A ``providers=`` value: ``"groq"`` or ``{"provider": "azure", "deployments": {...},
    "deployment_type": "data_zone"}``; a deployment may be ``{"model": ..., "type": ...}``."""
    if not isinstance(spec, Mapping):
        return spec, (), ()
    unknown = set(spec) - {"provider", "deployments", "deployment_type"}
    deployments = spec.get("deployments") or {}
    example = (
        f"providers[{key!r}]: a rule is a provider id or "
        f'{{"provider": "azure", "deployments": {{"my-deployment": "gpt-4o"}}}} (a deployment '
        f'may be {{"model": "gpt-4o", "type": "data_zone"}}; "deployment_type" sets the '
        f"resource's: {sorted(AZURE_UPLIFT)})"
    )
    if unknown or not isinstance(deployments, Mapping):
        raise ConfigError(example + (f"; unknown keys {sorted(unknown)}" if unknown else ""))
    pairs: list[tuple[str, str]] = []
    types: list[tuple[str, str]] = []
    if spec.get("deployment_type") is not None:
        types.append(("*", str(spec["deployment_type"])))
    for name, value in deployments.items():
        if isinstance(value, Mapping):
            if set(value) - {"model", "type"} or not value.get("model"):
                raise ConfigError(example + f"; deployment {name!r} is {dict(value)!r}")
            pairs.append((str(name), str(value["model"])))
            if value.get("type") is not None:
                types.append((str(name), str(value["type"])))
        else:
            pairs.append((str(name), str(value)))
    for name, kind in types:
        if kind not in AZURE_UPLIFT:
            raise ConfigError(
                example + f"; deployment type {kind!r} of {name!r} is not one of them"
            )
    return spec.get("provider"), tuple(pairs), tuple(types)


def _family_label(rule: _Rule, path: str) -> str:
    segment = path.strip("/").split("/", 1)[0]
    if segment and segment not in ("v1", "v1beta") and rule.family:
        return rule.family + segment
    return rule.label


def price_on_host(
    book: PriceBook,
    route: HostRoute | None,
    *,
    wire_provider: str | None,
    model: str,
    usage: Usage,
    requested: str | None = None,
    at: datetime,
    service_tier: str | None,
    unknown: str,
) -> PricedCost:
    """Price one response under the host's rules (see the module docstring)."""
    if route is None:  # a hook built without a route: the old behaviour
        return book.price(
            provider=wire_provider,
            model=model,
            usage=usage,
            at=at,
            service_tier=service_tier,
            unknown=unknown,
        )
    provider, name = route.pick(model, book.has_provider)
    if route.family is not None and requested and requested != model:
        # A router's response may drop the ":provider" suffix of the requested model (or
        # answer with the upstream's own id): the request says which table applies.
        asked, asked_name = route.pick(requested, book.has_provider)
        if asked is not None:
            provider = asked
            if book.resolve(model=name, provider=asked) is None:
                name = asked_name
    if (
        route.self_hosted
        and provider is not None
        and book.resolve(model=name, provider=provider) is None
    ):
        return _zero(book, provider, "self_hosted")
    if provider is None and route.family is None and route.known:
        # a known host without a price table: named on the row, priced nothing
        if not book.has_provider(route.label):
            return _zero(book, route.label, "unknown_model")
        provider = route.label
    if provider is None and route.family is not None:
        # a router that chose the serving provider itself: the first of its tables that
        # has the model, flagged (the router may have picked another one)
        for pid in book.provider_ids():
            if pid.startswith(route.family) and book.resolve(model=name, provider=pid):
                cost = book.price(
                    provider=pid, model=name, usage=usage, at=at, service_tier=service_tier
                )
                return replace(cost, status=f"host_unknown:{pid}")
    if provider is None:
        if route.fallback == _NONE:
            return _zero(book, None, "unknown_model")
        cost = book.price(
            provider=None,
            model=name,
            usage=usage,
            at=at,
            service_tier=service_tier,
            unknown=unknown,
        )
        if cost.status == "priced":
            return replace(cost, status=f"host_unknown:{cost.provider}")
        if cost.status.startswith("fallback:"):
            return replace(cost, status=f"host_unknown:{cost.provider}; {cost.status}")
        return cost
    cost = book.price(
        provider=provider,
        model=_in_table(book, provider, name),
        usage=usage,
        at=at,
        service_tier=service_tier,
        unknown=unknown,
    )
    kind = route.deployment_type(requested) if route.deployment_types else None
    return _uplift(cost, kind) if kind else cost


def _uplift(cost: PricedCost, kind: str) -> PricedCost:
    """An Azure Data Zone / Regional deployment's price: the Global price x 1.10, flagged
    ``pricing_status = "uplift:<type>+10%"`` (configured, not observed)."""
    factor = AZURE_UPLIFT.get(kind, Decimal(1))
    if factor == 1 or cost.status != "priced":
        return cost
    parts = {
        name: getattr(cost, name) * factor
        for name in ("input", "cache_read", "cache_write", "output", "tools", "steps")
    }
    total = sum(parts.values(), Decimal(0))
    percent = int((factor - 1) * 100)
    return replace(cost, **parts, total=total, status=f"uplift:{kind}+{percent}%")


def _in_table(book: PriceBook, provider: str, name: str) -> str:
    """``google/gemini-2.5-flash`` (Vertex's OpenAI-compatible ids) → ``gemini-2.5-flash``
    when only the bare id is in *this* provider's table (never another provider's)."""
    if "/" in name and book.resolve(model=name, provider=provider) is None:
        short = name.rsplit("/", 1)[-1]
        if book.resolve(model=short, provider=provider) is not None:
            return short
    return name


def _zero(book: PriceBook, provider: str | None, status: str) -> PricedCost:
    from finops.pricing import PricedCost

    return PricedCost(
        _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, book.version, None, provider, status
    )


# -- host-reported costs -------------------------------------------------------------------


def _money(value: object) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest repr is the JSON text as sent
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def host_cost(usage: Mapping[str, Any]) -> tuple[Decimal | None, str | None]:
    """The cost a host reports itself (OpenRouter ``usage.cost``) and what it consists of.

    Returns ``(cost, detail)``; ``detail`` notes bring-your-own-key calls (the host charges
    only its fee, ``cost_details.upstream_inference_cost`` is billed to the user's own
    provider key) so the difference to finops' token price can be explained on the row.
    """
    cost = _money(usage.get("cost"))
    if cost is None:
        return None, None
    notes: list[str] = []
    details = usage.get("cost_details")
    upstream = (
        _money(details.get("upstream_inference_cost")) if isinstance(details, Mapping) else None
    )
    if usage.get("is_byok") is True:
        notes.append("byok")
        if upstream is not None:
            notes.append(f"upstream_inference_cost={upstream}")
    elif upstream is not None and upstream != cost:
        notes.append(f"upstream_inference_cost={upstream}")
    return cost, "; ".join(notes) or None


def explain_host_cost(reported: Decimal, detail: str | None, ours: Decimal | None) -> str:
    """One line on the row saying why the host's cost differs from finops' token price."""
    parts = [detail] if detail else []
    if ours is None:
        parts.append("finops: not priced")
        return "; ".join(parts)
    diff = reported - ours
    if detail and detail.startswith("byok"):
        parts.append(
            f"host charged its fee only ({reported}); tokens at list price {ours} are billed "
            f"to your own provider key"
        )
    elif diff == 0:
        parts.append("matches finops")
    elif diff > 0:
        parts.append(f"host +{diff}: fees beyond token prices (plugins such as web search, markup)")
    else:
        parts.append(f"host {diff}: discount or caching not visible in the usage counts")
    return "; ".join(parts)


def amend_row(row: LedgerRow, route: HostRoute | None, parsed: Parsed, cost: PricedCost) -> None:
    """Write what the host adds to a priced row: the provider a family host picked for this
    call, and the host's own reported cost beside finops' (with the difference explained)."""
    if route is not None and route.family is not None and cost.provider:
        row.provider = cost.provider if cost.status == "priced" else row.provider
    reported = parsed.host_cost
    if reported is not None:
        row.host_cost = reported
        row.host_cost_detail = explain_host_cost(reported, parsed.host_cost_detail, row.cost_total)


def known_price_providers(book: PriceBook) -> frozenset[str]:
    """The provider ids that have a price table (for checking ``providers=`` mappings)."""
    return frozenset(book.provider_ids())


def has_price(book: PriceBook, route: HostRoute | None, model: str, provider: str | None) -> bool:
    """Whether a call for ``model`` through ``route`` would be priced (the pre-call guard of
    ``unknown_model="raise"``): deployment names map to their model, family hosts pick
    their table, self-hosted servers are free, unknown hosts follow the fallback policy."""
    if route is None:
        return book.resolve(model=model, provider=provider) is not None
    pid, name = route.pick(model, book.has_provider)
    if route.self_hosted:
        return True
    if pid is not None:
        return book.resolve(model=_in_table(book, pid, name), provider=pid) is not None
    if route.family is not None:
        return any(
            p.startswith(route.family) and book.resolve(model=name, provider=p) is not None
            for p in book.provider_ids()
        )
    if route.known:
        return book.has_provider(route.label) and (
            book.resolve(model=name, provider=route.label) is not None
        )
    return route.fallback != _NONE and book.resolve(model=name) is not None


@lru_cache(maxsize=1)
def _default_hosts() -> HostMap:
    return HostMap()


def route_for(hosts: HostMap | None, wire: str, base_url: str) -> HostRoute:
    """The route of a client on ``base_url`` (``hosts``: the user's map, else the shipped)."""
    return (hosts or _default_hosts()).route(base_url, wire=wire)
