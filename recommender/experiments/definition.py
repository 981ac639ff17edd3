"""What an experiment is: named variants, their traffic shares, the lists it covers and when.

A definition is plain data (it round-trips through JSON into the store's ``experiments`` table),
checked once here, so the CLI, the admin API and the serving side share one set of rules.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field, fields, replace
from typing import Any

from recommender.domain import ValidationError, check_id, control_character, parse_time
from recommender.params import RankingParams, check_ranking

MODES = ("ab", "interleave")
STATUSES = ("scheduled", "running", "ended", "stopped")
LIST_TYPES = ("feed", "related")
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,31}")
MAX_VARIANTS = 8
SHARE_TOTAL = 100
_RANKING_FIELDS = {f.name: f.type for f in fields(RankingParams)}


def _config_hash(model_version: str, params: dict[str, float]) -> str:
    """12 hex digits of SHA-256 over the canonical JSON of what builds a variant's lists."""
    canonical = json.dumps({"model_version": model_version, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Variant:
    """One arm: a model version, optionally with ranking parameters overriding the bundle's.

    ``params`` names :class:`~recommender.params.RankingParams` fields and their values; the
    variant's *config* is ``params_name`` (or the model version) plus a hash of both, which every
    served list records, so a click traces back to exactly what ranked it.
    """

    label: str
    model_version: str
    params: dict[str, float] = field(default_factory=dict)
    params_name: str | None = None

    @property
    def config_hash(self) -> str:
        return _config_hash(self.model_version, self.params)

    @property
    def config(self) -> str:
        """``NAME@HASH``: what a served list of this variant records beside its model version."""
        return f"{self.params_name or self.model_version}@{self.config_hash}"

    def ranking(self, base: RankingParams) -> RankingParams:
        """``base`` (the bundle's parameters) with this variant's overrides."""
        return replace(base, **self.params) if self.params else base

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "model_version": self.model_version}
        if self.params:
            out["params"] = dict(self.params)
        if self.params_name:
            out["params_name"] = self.params_name
        out["config"] = self.config
        return out


@dataclass(frozen=True)
class Experiment:
    """A running (or stopped) comparison of two or more variants on live traffic.

    Attributes
    ----------
    name : str
        Unique id (the CLI's and the API's handle).
    variants : tuple of Variant
        The first is the control: differences are reported as ``variant - control``.
    shares : tuple of int
        Percent of readers per variant, summing to 100 (interleaving: two variants, shares unused).
    lists : tuple of str
        Which list types it covers: ``feed``, ``related`` or both.
    mode : str
        ``ab`` (each reader sees one variant) or ``interleave`` (one list team-drafted from two).
    salt : str
        Hashed with the reader id: assignments of two experiments are independent.
    starts_at, ends_at : float or None
        Epoch seconds; lists outside ``[starts_at, ends_at)`` are not in the experiment.
    stopped_at : float or None
        When it was stopped (it then covers no list, whatever ``ends_at`` says).
    """

    name: str
    variants: tuple[Variant, ...]
    shares: tuple[int, ...]
    lists: tuple[str, ...] = LIST_TYPES
    mode: str = "ab"
    salt: str = ""
    starts_at: float | None = None
    ends_at: float | None = None
    created_at: float = 0.0
    stopped_at: float | None = None

    def active(self, now: float, list_type: str | None = None) -> bool:
        """Whether a list of ``list_type`` (any when None) served at ``now`` belongs to it."""
        if self.stopped_at is not None and now >= self.stopped_at:
            return False
        if self.starts_at is not None and now < self.starts_at:
            return False
        if self.ends_at is not None and now >= self.ends_at:
            return False
        return list_type is None or list_type in self.lists

    def over(self, now: float) -> bool:
        """Stopped, or past its end: no list of it will be served again (one not started yet is not)."""
        return self.stopped_at is not None or (self.ends_at is not None and self.ends_at <= now)

    def status(self, now: float) -> str:
        """One of :data:`STATUSES` at ``now``: ``stopped`` (by hand, before its end), ``ended`` (past
        ``ends_at``), ``scheduled`` (before ``starts_at``) or ``running``."""
        if self.ends_at is not None and self.ends_at <= now and (self.stopped_at is None
                                                                  or self.ends_at <= self.stopped_at):
            return "ended"
        if self.stopped_at is not None:
            return "stopped"
        if self.starts_at is not None and now < self.starts_at:
            return "scheduled"
        return "running"

    def described(self, now: float) -> dict:
        """:meth:`to_dict` with the :meth:`status` at ``now``: what the API, the CLI and the console show."""
        return {**self.to_dict(), "status": self.status(now)}

    def variant(self, label: str) -> Variant:
        for v in self.variants:
            if v.label == label:
                return v
        raise KeyError(label)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(v.label for v in self.variants)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "variants": [v.to_dict() for v in self.variants],
            "shares": list(self.shares),
            "lists": list(self.lists),
            "salt": self.salt,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_at": self.created_at,
            "stopped_at": self.stopped_at,
        }

    def to_json(self) -> str:
        """The definition as stored (without ``stopped_at``, a column of its own)."""
        d = self.to_dict()
        d.pop("stopped_at")
        return json.dumps(d, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, stopped_at: float | None = None) -> "Experiment":
        d = json.loads(text)
        d["stopped_at"] = stopped_at
        return experiment_from_dict(d, trusted=True)


def _label(value: Any) -> str:
    if not isinstance(value, str) or not LABEL_PATTERN.fullmatch(value):
        raise ValidationError(f"variant label must be 1-32 letters, digits, _ or -, starting with a letter or "
                              f"digit; got {value!r}")
    return value


def _params(value: Any, label: str, trusted: bool = False) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"params of variant {label} must be an object of RankingParams fields")
    out: dict[str, float] = {}
    for key, v in value.items():
        if key not in _RANKING_FIELDS:
            raise ValidationError(f"params of variant {label}: {key!r} is not a RankingParams field "
                                  f"(e.g. feed_trending, feed_cf, related_fresh)")
        if "str" in str(_RANKING_FIELDS[key]):  # e.g. diversity: numbers only here (the API schema says so)
            raise ValidationError(f"params of variant {label}: {key} is not a number; set it in the training "
                                  f"config instead")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf"):
            raise ValidationError(f"params of variant {label}: {key} must be a finite number")
        whole = "int" in str(_RANKING_FIELDS[key])
        if whole and v != int(v):  # int() would serve 2.5 as 2 under the name of 2.5
            raise ValidationError(f"params of variant {label}: {key} must be a whole number, got {v!r}")
        out[key] = int(v) if whole else float(v)
    try:  # ranges the parameters check themselves (e.g. mmr_lambda in [0, 1]), and check_ranking's when made
        ranking = RankingParams(**out)
        if not trusted:
            check_ranking(ranking)
    except ValueError as e:
        raise ValidationError(f"params of variant {label}: {e}") from None
    return out


def _time(value: Any, name: str) -> float | None:
    """Epoch seconds, or an ISO-8601 time as every other body takes (stored as epoch seconds)."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_time(value, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e11:
        raise ValidationError(f"{name} must be epoch seconds or an ISO-8601 time (e.g. 2026-12-31T00:00:00+07:00), "
                              "or null")
    return float(value)


def experiment_from_dict(d: Any, trusted: bool = False, now: float | None = None) -> Experiment:
    """Build and check an experiment from JSON-shaped data (the admin API's body, a stored row).

    ``variants`` is a list of ``{"label", "model_version", "params"?, "params_name"?}``;
    ``shares`` (percent, default equal), ``lists`` (default both), ``mode`` (default ``ab``),
    ``salt`` (default random), ``starts_at``/``ends_at`` (epoch seconds, optional).
    Raises :class:`~recommender.domain.ValidationError` with what to fix.
    """
    if not isinstance(d, dict):
        raise ValidationError('send an object: {"name": ..., "variants": [{"label": ..., "model_version": ...}, ...]}')
    known = {"name", "variants", "shares", "lists", "mode", "salt", "starts_at", "ends_at", "created_at", "stopped_at"}
    extra = sorted(set(d) - known)
    if extra and not trusted:
        raise ValidationError(f"unknown field(s): {', '.join(map(str, extra[:5]))}")
    name = check_id(d.get("name"), "name")
    raw = d.get("variants")
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_VARIANTS:
        raise ValidationError(f"variants must be a list of 2 to {MAX_VARIANTS} variants")
    variants = []
    for v in raw:
        if not isinstance(v, dict) or set(v) - {"label", "model_version", "params", "params_name", "config"}:
            raise ValidationError('each variant is {"label": ..., "model_version": ..., "params"?: {...}, '
                                  '"params_name"?: ...}')
        label = _label(v.get("label"))
        version = check_id(v.get("model_version"), f"model_version of variant {label}")
        params_name = v.get("params_name")
        if params_name is not None:
            params_name = check_id(params_name, f"params_name of variant {label}")
        variants.append(Variant(label, version, _params(v.get("params"), label, trusted), params_name))
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise ValidationError(f"variant labels must be distinct; got {labels}")
    mode = d.get("mode", "ab")
    if mode not in MODES:
        raise ValidationError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "interleave" and len(variants) != 2:
        raise ValidationError("interleave mode merges exactly two variants")
    base = SHARE_TOTAL // len(variants)
    equal = [base + (1 if i < SHARE_TOTAL - base * len(variants) else 0) for i in range(len(variants))]
    shares = d.get("shares")
    if shares is None:
        shares = equal
    elif mode == "interleave" and shares != equal and not trusted:
        raise ValidationError(f"interleave mode splits every list between both variants, 50/50 by construction: "
                              f"leave out shares (--share) or use mode ab; got {shares!r}")
    if (not isinstance(shares, list) or len(shares) != len(variants)
            or any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s <= SHARE_TOTAL for s in shares)
            or sum(shares) != SHARE_TOTAL):
        raise ValidationError(f"shares must be {len(variants)} whole percentages above 0 summing to 100 "
                              f"(one per variant, in order); got {shares!r}")
    lists = d.get("lists", list(LIST_TYPES))
    if (not isinstance(lists, list) or not lists or any(x not in LIST_TYPES for x in lists)
            or len(set(lists)) != len(lists)):
        raise ValidationError(f"lists must be a non-empty list of {', '.join(LIST_TYPES)}; got {lists!r}")
    salt = d.get("salt") or secrets.token_hex(8)
    # printable: every assignment hashes it as UTF-8, and a lone surrogate has no UTF-8 form (every
    # list the experiment covers failed)
    if not isinstance(salt, str) or len(salt) > 64 or (not trusted and control_character(salt) is not None):
        raise ValidationError("salt must be printable text of at most 64 characters")
    starts_at, ends_at = _time(d.get("starts_at"), "starts_at"), _time(d.get("ends_at"), "ends_at")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise ValidationError("ends_at must be after starts_at")
    return Experiment(
        name=name, variants=tuple(variants), shares=tuple(int(s) for s in shares),
        lists=tuple(x for x in LIST_TYPES if x in lists), mode=mode, salt=salt, starts_at=starts_at, ends_at=ends_at,
        created_at=float(d.get("created_at") or (now or 0.0)), stopped_at=_time(d.get("stopped_at"), "stopped_at"),
    )
