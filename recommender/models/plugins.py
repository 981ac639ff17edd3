"""Bring your own model: a data scientist's scorer, candidate source or article embedder.

A plugin is a plain class named by an import path in the training config
(``"plugins": [{"role": "scorer", "path": "mypkg.mod:MyScorer", "params": {...}, "weight": 0.3}]``,
see :class:`recommender.params.PluginSpec`). It follows scikit-learn's shape: ``__init__`` stores
its keyword arguments (``params``), ``fit(interactions, articles)`` learns and returns ``self``,
and then, by role:

- ``scorer``: ``score(reader, items) -> ndarray (n,)``, higher is better; ``weight`` x the score
  is added to each candidate's blended score (the blend's parts are roughly 0-1 each).
- ``candidates``: ``candidates(reader, items, k) -> ndarray`` of positions into ``items`` (the
  serving window less what the reader read), at most ``k``; they join the feed's candidates.
- ``embedder``: ``embed(items) -> ndarray (n, d)``; related lists (and feeds, if configured) add
  ``weight`` x the cosine similarity to the anchor (to the mean of the reader's history), and
  related candidates gain the bundle's neighbour lists by these vectors.

Bundles never hold pickles, so a plugin's learned state goes through ``get_state() -> dict``
whose values are numpy arrays (stored as ``plugin_<name>_<key>.npy``) or JSON values (stored in
the ``plugins`` document), and ``set_state(state)`` takes the same dict back. The bundle records
the import path: the service imports it, builds ``Class(**params)`` and calls ``set_state``.

What a plugin sees is :class:`Interactions` and :class:`Items` at training, :class:`Reader` and
:class:`Items` when a list is built: external article and reader ids, never newsrec's indices.
A plugin that cannot be imported, built or restored makes the bundle refuse to load
(:class:`PluginError`, at training and at promotion); one that raises while a list is built is
logged, counted (``errors``) and skipped for that list.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from recommender.domain import EVENT_CODES
from recommender.params import PluginSpec

log = logging.getLogger(__name__)

DOCUMENT = "plugins"
ARRAY_PREFIX = "plugin_"
EVENT_NAMES = tuple(sorted(EVENT_CODES, key=EVENT_CODES.get))
_KEY = re.compile(r"[a-z][a-z0-9_]*")
_MAX_ARRAY_NAME = 64
RESERVED_KEYS = frozenset({"vectors", "nb_idx", "nb_sim"})  # an embedder's vectors and neighbour lists
# the role's methods besides fit/get_state/set_state
ROLE_METHODS = {"scorer": ("score",), "candidates": ("candidates",), "embedder": ("embed",)}


class PluginError(ValueError):
    """A plugin cannot be imported, built, fitted or restored; the message says which and how to fix it."""


# -- what a plugin sees -------------------------------------------------------------------------
@dataclass(frozen=True)
class Interactions:
    """The training events, one row per event, shape (m,) each.

    ``reader`` indexes ``reader_ids``; ``article`` indexes the :class:`Items` passed beside it;
    ``event`` indexes ``EVENT_NAMES`` (``is_positive`` marks click, read and share); ``weight`` is
    newsrec's own interest weight (dwell and decay applied; 0 for impressions and hides).
    """

    reader: np.ndarray
    article: np.ndarray
    event: np.ndarray
    ts: np.ndarray
    weight: np.ndarray
    reader_ids: np.ndarray
    event_names: tuple[str, ...] = EVENT_NAMES

    @property
    def is_positive(self) -> np.ndarray:
        return np.isin(self.event, [EVENT_CODES["click"], EVENT_CODES["read"], EVENT_CODES["share"]])

    def __len__(self) -> int:
        return int(self.article.shape[0])


class Items:
    """Articles, n of them: ``article_id``, ``category``, ``region`` ("" when none) and ``title``
    (str arrays), ``published_at`` (float64 epoch seconds), ``text`` (float32 (n, d), newsrec's
    unit text vectors). Columns are computed on first use, so a plugin pays only for what it reads.
    """

    def __init__(self, n: int, columns: Mapping[str, Callable[[], np.ndarray] | np.ndarray]):
        self._n = int(n)
        self._columns = dict(columns)
        self._cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self._n

    def _get(self, name: str) -> np.ndarray:
        value = self._cache.get(name)
        if value is None:
            source = self._columns[name]
            value = np.asarray(source() if callable(source) else source)
            self._cache[name] = value
        return value

    article_id = property(lambda self: self._get("article_id"))
    category = property(lambda self: self._get("category"))
    region = property(lambda self: self._get("region"))
    title = property(lambda self: self._get("title"))
    published_at = property(lambda self: self._get("published_at"))
    text = property(lambda self: self._get("text"))


@dataclass(frozen=True)
class Reader:
    """Who a list is for. ``history``: article ids the reader clicked, read or shared, oldest first
    (empty for a related list, which every reader shares); ``followed_categories`` and
    ``followed_regions``: names; ``anchor``: the article a related list is under (None for feeds)."""

    user_id: str | None
    history: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    followed_categories: tuple[str, ...] = ()
    followed_regions: tuple[str, ...] = ()
    anchor: str | None = None
    now: float = 0.0


# -- the protocols ------------------------------------------------------------------------------
@runtime_checkable
class Plugin(Protocol):
    def fit(self, interactions: Interactions, articles: Items) -> "Plugin": ...

    def get_state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> "Plugin": ...


@runtime_checkable
class Scorer(Plugin, Protocol):
    def score(self, reader: Reader, items: Items) -> np.ndarray: ...


@runtime_checkable
class CandidateSource(Plugin, Protocol):
    def candidates(self, reader: Reader, items: Items, k: int) -> np.ndarray: ...


@runtime_checkable
class Embedder(Plugin, Protocol):
    def embed(self, items: Items) -> np.ndarray: ...


# -- loading ------------------------------------------------------------------------------------
def resolve(spec: PluginSpec) -> type:
    """The class ``spec.path`` names; PluginError if it cannot be imported."""
    module_name, _, attr = spec.path.partition(":")
    what = f"plugin {spec.name} ({spec.role}, {spec.path!r})"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module raising while it is imported
        raise PluginError(f"{what} cannot be imported: {type(exc).__name__}: {exc}; install the package that "
                          "holds it on every host that trains or serves, or fix 'path' in the training config") from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise PluginError(f"{what}: module {module_name!r} has no {attr!r}; fix 'path' in the training config")
    return cls


def build(spec: PluginSpec) -> Any:
    """A new, unfitted plugin: ``Class(**params)``, checked for its role's methods."""
    cls = resolve(spec)
    what = f"plugin {spec.name} ({spec.role}, {spec.path!r})"
    try:
        obj = cls(**spec.params)
    except Exception as exc:
        raise PluginError(f"{what} cannot be built with params {spec.params}: {type(exc).__name__}: {exc}") from exc
    needed = ("fit", "get_state", "set_state", *ROLE_METHODS[spec.role])
    missing = [m for m in needed if not callable(getattr(obj, m, None))]
    if missing:
        raise PluginError(f"{what} lacks {', '.join(missing)}(): a {spec.role} needs fit, get_state, set_state and "
                          f"{', '.join(ROLE_METHODS[spec.role])} (see docs/byo_model.md)")
    return obj


def split_state(spec: PluginSpec, state: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``get_state()``'s dict -> (bundle arrays named ``plugin_<name>_<key>``, JSON part)."""
    what = f"plugin {spec.name} ({spec.path!r}): get_state()"
    if not isinstance(state, dict):
        raise PluginError(f"{what} must return a dict of numpy arrays and JSON values; got {type(state).__name__}")
    arrays: dict[str, np.ndarray] = {}
    document: dict[str, Any] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise PluginError(f"{what}: key {key!r} must be lowercase letters, digits and '_', starting with a letter")
        if key in RESERVED_KEYS:
            raise PluginError(f"{what}: key {key!r} is reserved for newsrec's own arrays of the plugin; rename it")
        if isinstance(value, np.ndarray):
            name = f"{ARRAY_PREFIX}{spec.name}_{key}"
            if len(name) > _MAX_ARRAY_NAME:
                raise PluginError(f"{what}: key {key!r} is too long (array name {name!r} over {_MAX_ARRAY_NAME})")
            if value.dtype.hasobject:
                raise PluginError(f"{what}: array {key!r} holds Python objects ({value.dtype}); bundles hold plain "
                                  "data only: use a numeric or fixed-width string dtype")
            arrays[name] = value
        else:
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise PluginError(f"{what}: value of {key!r} is neither a numpy array nor JSON ({exc}); bundles "
                                  "never hold pickles: convert it (e.g. .tolist(), float())") from exc
            document[key] = value
    return arrays, document


def state_key(spec: PluginSpec, array_name: str) -> str:
    """The ``get_state()`` key of a bundle array named ``plugin_<name>_<key>`` (see :func:`split_state`)."""
    return array_name[len(ARRAY_PREFIX) + len(spec.name) + 1:]


@dataclass
class LoadedPlugin:
    """A fitted plugin as the service runs it, with its spec and the failures it had in this process."""

    spec: PluginSpec
    model: Any
    vectors: np.ndarray | None = None  # embedder: unit vectors of the bundle's articles, (n, d) float32
    neighbours: tuple[np.ndarray, np.ndarray] | None = None  # embedder: window neighbour lists (idx, sim)
    errors: int = 0
    last_error: str | None = None
    fresh_vectors: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # embedder: fresh articles
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    def failed(self, kind: str, exc: BaseException) -> None:
        """Count and log a failure while a list was built (the list is served without this plugin)."""
        with self._lock:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            n = self.errors
        # the first failures with their traceback, later ones as one line (a broken plugin fails on every list)
        log.warning("plugin %s (%s, %s) failed on a %s list (%d so far), skipped for it: %s", self.name,
                    self.spec.role, self.spec.path, kind, n, self.last_error, exc_info=n <= 3)


def restore(spec: PluginSpec, arrays: dict[str, np.ndarray], document: dict[str, Any]) -> Any:
    """``Class(**params).set_state(state)``: what the service runs."""
    obj = build(spec)
    state = {**document, **{state_key(spec, k): v for k, v in arrays.items()}}
    try:
        obj.set_state(state)
    except Exception as exc:
        raise PluginError(f"plugin {spec.name} ({spec.path!r}): set_state() failed on the bundle's state: "
                          f"{type(exc).__name__}: {exc}") from exc
    return obj


def entry_specs(document: Sequence[Mapping[str, Any]] | None) -> list[tuple[Mapping[str, Any], PluginSpec]]:
    """Each entry of a bundle's plugins document with its spec; PluginError for a malformed one."""
    out = []
    for i, entry in enumerate(document or ()):
        try:
            out.append((entry, PluginSpec.from_dict(entry["spec"], i)))
        except (KeyError, TypeError, ValueError) as exc:
            raise PluginError(f"bundle plugin entry {i} is malformed ({exc}); retrain") from exc
    return out


def load_plugins(document: Sequence[Mapping[str, Any]] | None,
                 arrays: Mapping[str, np.ndarray]) -> tuple[LoadedPlugin, ...]:
    """The bundle's plugins, restored; PluginError (naming the plugin and the fix) if one cannot be."""
    loaded = []
    for entry, spec in entry_specs(document):
        prefix = f"{ARRAY_PREFIX}{spec.name}_"
        keys = set(entry.get("arrays", ()))
        state_arrays = {k: v for k, v in arrays.items() if k.startswith(prefix) and k[len(prefix):] in keys}
        model = restore(spec, state_arrays, dict(entry.get("state", {})))
        vectors = arrays.get(f"{prefix}vectors") if spec.role == "embedder" else None
        nb = None
        if spec.role == "embedder":
            if vectors is None:
                raise PluginError(f"bundle lacks the vectors of embedder plugin {spec.name}; retrain")
            idx, sim = arrays.get(f"{prefix}nb_idx"), arrays.get(f"{prefix}nb_sim")
            nb = (idx, sim) if idx is not None and sim is not None else None
        loaded.append(LoadedPlugin(spec, model, vectors=vectors, neighbours=nb))
    return tuple(loaded)


def unit_rows(vectors: Any, n: int, what: str) -> np.ndarray:
    """An embedder's output checked ((n, d), finite) and scaled to unit rows, float32."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[0] != n:
        raise ValueError(f"{what}: embed() must return shape ({n}, d); got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{what}: embed() returned NaN or infinite values")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12), dtype=np.float32)


def fit_plugins(specs: Sequence[PluginSpec], interactions: Interactions, articles: Items,
                neighbours: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
                ) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], dict[str, Any]]:
    """Fit each plugin; returns (bundle arrays, the ``plugins`` document, a report).

    ``neighbours(unit_vectors)`` gives an embedder's window neighbour lists (absolute indices and
    similarities, like the bundle's text lists). Any failure is a PluginError naming the plugin.
    """
    arrays: dict[str, np.ndarray] = {}
    document: list[dict[str, Any]] = []
    report: dict[str, Any] = {}
    for spec in specs:
        obj = build(spec)
        what = f"plugin {spec.name} ({spec.role}, {spec.path!r})"
        try:
            fitted = obj.fit(interactions, articles)
        except Exception as exc:
            raise PluginError(f"{what}: fit() failed: {type(exc).__name__}: {exc}") from exc
        if fitted is not obj:
            raise PluginError(f"{what}: fit() must return self (scikit-learn convention)")
        try:
            state = obj.get_state()
        except Exception as exc:
            raise PluginError(f"{what}: get_state() failed: {type(exc).__name__}: {exc}") from exc
        state_arrays, state_json = split_state(spec, state)
        arrays.update(state_arrays)
        entry = {"spec": spec.to_dict(), "state": state_json,
                 "arrays": sorted(state_key(spec, k) for k in state_arrays)}
        if spec.role == "embedder":
            try:
                vectors = unit_rows(obj.embed(articles), len(articles), what)
            except Exception as exc:
                raise PluginError(f"{what}: embed() failed on the catalog: {type(exc).__name__}: {exc}") from exc
            arrays[f"{ARRAY_PREFIX}{spec.name}_vectors"] = vectors
            if neighbours is not None:
                idx, sim = neighbours(vectors)
                arrays[f"{ARRAY_PREFIX}{spec.name}_nb_idx"] = idx
                arrays[f"{ARRAY_PREFIX}{spec.name}_nb_sim"] = sim
        document.append(entry)
        report[spec.name] = {"role": spec.role, "path": spec.path, "arrays": len(state_arrays),
                             "state_bytes": int(sum(a.nbytes for a in state_arrays.values()))}
    return arrays, document, report
