"""Which model version is live: staged versions, promotion and rollback, the legacy ``CURRENT`` file.

Training writes a bundle as a *staged* version: in the models folder, not served. The database
says which version is live (:meth:`Store.live_model`), so every replica on every host agrees,
and a promotion is a compare-and-set there (:meth:`Store.promote_model`): two trainers or
operators at once cannot overwrite each other unseen, and a retrain that only stages never
undoes a rollback. Serving workers follow the ``model`` change a promotion appends to the log
and load the version from the models folder every replica mounts (``NEWSREC_MODELS``).

``CURRENT``, the pointer file of older releases, is written after every promotion as a copy of
the live version, for people and for older tools (best effort: the database is what counts).
newsrec reads it once: a database that names no live version adopts the version ``CURRENT``
names, so an upgraded installation keeps serving what it served.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from recommender.store import Store, StoreError

from .bundle import BundleError, list_versions, load_bundle, read_current, set_current, verify_bundle
from .plugins import DOCUMENT as PLUGINS_DOCUMENT
from .plugins import PluginError, entry_specs, load_plugins, resolve

log = logging.getLogger(__name__)

__all__ = ["PromotionConflict", "PromotionError", "UNSET", "describe", "live_version", "promote", "rollback"]

#: ``expected`` not given: compare with the live version as read just before the promotion
UNSET: Any = ...
MODEL_CHANGES = ("model",)
_HISTORY_BATCH = 10_000


class PromotionError(BundleError):
    """A version cannot be made live (its bundle is missing or damaged, or it is not older
    than the live version for a rollback)."""


class PromotionConflict(PromotionError):
    """The live version was not the expected one: someone else promoted meanwhile.

    Attributes
    ----------
    version : str
        The version that was not made live.
    expected, live : str or None
        The live version the promotion expected to replace, and the one that is live.
    built : BuiltModel or None
        What :func:`~recommender.models.fitting.train` built and staged before the promotion failed
        (its report is still the training's), when the conflict comes from there.
    """

    built = None

    def __init__(self, version: str, expected: str | None, live: str | None):
        self.version, self.expected, self.live = version, expected, live
        super().__init__(
            f"{version} was not made live: the live version is {live or 'none'}, not {expected or 'none'} as "
            "expected (another promotion or rollback happened meanwhile); check 'newsrec models list' and "
            "promote again if it is still wanted")


def live_version(store: Store, models_dir: str | Path) -> str | None:
    """The live version; a database that names none adopts the version ``CURRENT`` names (once).

    The adoption is a compare-and-set against "no live version", so when every worker of every
    replica starts at once, one writes it and the others read it.
    """
    live = store.live_model()
    if live is not None:
        return live
    try:
        current = read_current(models_dir)
    except BundleError as exc:
        log.warning("the CURRENT file is not adopted as the live model: %s", exc)
        return None
    if current is None:
        return None
    if store.promote_model(current, expected=None):
        log.info("adopted %s, named by %s/CURRENT, as the live model version", current, models_dir)
    return store.live_model()


def plugin_problems(models_dir: str | Path, version: str) -> list[str]:
    """Why the bundle's bring-your-own plugins would not load here (their package is not installed,
    their state does not restore), as problem lines; empty when it has none or they load."""
    try:
        bundle = load_bundle(models_dir, version, verify=False)
        load_plugins(bundle.documents.get(PLUGINS_DOCUMENT), bundle.arrays)
    except (BundleError, PluginError) as exc:
        return [str(exc)]
    return []


def plugin_import_problem(models_dir: str | Path, version: str) -> str | None:
    """Why the bundle's plugins cannot be imported here (the first one), or None: cheap enough for
    every row of ``newsrec models list`` (the plugins document read and each class imported; no
    file hashed and no state restored, as :func:`plugin_problems` and ``models verify`` do)."""
    try:
        document = json.loads((Path(models_dir) / version / f"{PLUGINS_DOCUMENT}.json").read_bytes())
    except FileNotFoundError:  # no plugins
        return None
    except (OSError, ValueError) as exc:
        return f"its {PLUGINS_DOCUMENT}.json cannot be read ({exc})"
    try:
        for _, spec in entry_specs(document):
            resolve(spec)
    except PluginError as exc:
        return str(exc).split("; ")[0]  # without the fix: 'models verify' says it
    return None


def promote(store: Store, models_dir: str | Path, version: str, expected: str | None = UNSET,
            verify: bool = True) -> str | None:
    """Make ``version`` the live model of every replica; returns the version it replaced.

    Parameters
    ----------
    store : Store
    models_dir : str or Path
        The models folder every replica mounts.
    version : str
        A version written there (checked first: sizes and checksums, unless ``verify`` is False
        because the caller just loaded it).
    expected : str or None, optional
        The live version this promotion replaces (None: no version is live). Default: the live
        version read just before, so only a promotion at the same instant can conflict.

    Raises
    ------
    PromotionError
        The bundle is missing or damaged (nothing changes).
    PromotionConflict
        The live version is not ``expected`` (nothing changes).
    """
    problems = verify_bundle(models_dir, version) if verify else []  # also refuses a malformed version
    if verify and not problems:
        problems = plugin_problems(models_dir, version)
    if problems:
        raise PromotionError(f"refusing to make {version} live:\n  " + "\n  ".join(problems))
    if expected is UNSET:
        expected = live_version(store, models_dir)
    if not store.promote_model(version, expected=expected):
        raise PromotionConflict(version, expected, store.live_model())
    if expected == version:  # nothing changed: no replica reloads
        log.info("model %s was live already", version)
    else:
        log.info("model %s is live (was %s)", version, expected)
    _copy_to_current(store, Path(models_dir))
    return expected


def rollback(store: Store, models_dir: str | Path, version: str, expected: str | None = UNSET) -> str | None:
    """:func:`promote` an older version (written before the live one); returns the version it replaced."""
    live = live_version(store, models_dir) if expected is UNSET else expected
    order = [row["version"] for row in list_versions(models_dir)]
    if live in order and version in order and order.index(version) > order.index(live):
        raise PromotionError(f"{version} is newer than the live version {live}: a rollback goes back to an older "
                             f"version; use 'newsrec models promote {version}'")
    return promote(store, models_dir, version, expected=live)


def previous_version(store: Store, models_dir: str | Path, live: str | None) -> str | None:
    """What a rollback without a version goes back to: of the versions written before ``live``
    (the live one as the caller read it: a promotion since makes the rollback conflict), the one
    live most recently (None when none of them ever was)."""
    order = [row["version"] for row in list_versions(models_dir)]
    older = order[:order.index(live)] if live in order else order
    promoted = _promotions(store)
    was_live = [version for version in older if version in promoted]
    return max(was_live, key=promoted.__getitem__) if was_live else None


def gone_versions(store: Store, models_dir: str | Path, live: str | None) -> list[str]:
    """Versions live before ``live`` that are no longer in the models folder (pruned by a later
    training's ``keep``, or deleted), most recently live first: why a rollback may find none."""
    present = {row["version"] for row in list_versions(models_dir)}
    promoted = _promotions(store)
    return sorted((v for v in promoted if v != live and v not in present), key=promoted.__getitem__, reverse=True)


def describe(store: Store | None, models_dir: str | Path) -> list[dict]:
    """The versions in the models folder, oldest first, each with its part.

    The rows of :func:`~recommender.models.bundle.list_versions` plus ``status`` (``live``;
    ``staged``: written, never live; ``retired``: live before), ``live`` (bool) and
    ``promoted_at`` (epoch seconds it was last made live, or None). ``current`` is the same as
    ``live`` (the name older clients read). A live version missing from the folder is listed
    too, with ``valid`` False and the problem. Without a store (``store`` None) the live version
    is the one ``CURRENT`` names.
    """
    if store is None:
        try:
            live = read_current(models_dir)
        except BundleError:
            live = None
        promoted: dict[str, float] = {}
    else:
        live = live_version(store, models_dir)
        promoted = _promotions(store)
    rows = list_versions(models_dir)
    if live is not None and live not in {row["version"] for row in rows}:
        rows.append({"version": live, "created_at": None, "current": True, "n_files": 0, "total_bytes": 0,
                     "valid": False, "problem": f"the live version is not in {Path(models_dir).name}/: every replica "
                                                "serves what it had until the bundle is copied there"})
    for row in rows:
        version = row["version"]
        row["live"] = row["current"] = version == live
        row["status"] = "live" if version == live else "retired" if version in promoted else "staged"
        row["promoted_at"] = promoted.get(version)
    return rows


def _promotions(store: Store) -> dict[str, float]:
    """When each version was last made live, from the ``model`` changes of the log."""
    out: dict[str, float] = {}
    pos = 0
    while True:
        changes = store.changes_after(pos, limit=_HISTORY_BATCH, kinds=MODEL_CHANGES)
        for change in changes:
            out[change.ref] = change.at
        if len(changes) < _HISTORY_BATCH:
            return out
        pos = changes[-1].pos


def _copy_to_current(store: Store, models_dir: Path) -> None:
    """Point ``CURRENT`` at the live version as the database says right after the promotion
    (not at the promoted one: a later promotion may have committed meanwhile)."""
    try:
        live = store.live_model()
        if live is not None and _read_current_or_none(models_dir) != live:
            set_current(models_dir, live, verify=False)
    except (StoreError, BundleError, OSError) as exc:
        log.warning("CURRENT not updated (only a copy for people and older tools; the database says "
                    "which version is live): %s", exc)


def _read_current_or_none(models_dir: Path) -> str | None:
    try:
        return read_current(models_dir)
    except BundleError:
        return None
