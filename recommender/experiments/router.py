"""Which lists belong to an experiment, and building them: the serving side of experiments.

One :class:`ExperimentRouter` per serving process, beside the main engine. It follows the log's
``experiment`` changes (an indexed read, every ``poll_interval``), keeps the running experiments
and one :class:`~.variants.PinnedEngine` per variant, and answers a list request either from the
variant the reader is assigned to (A/B), from both variants team-drafted into one list
(interleaving) or, outside any experiment, not at all (the caller asks the main engine).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recommender.domain import ANONYMOUS
from recommender.serving.engine import Engine, EngineConfig
from recommender.serving.results import RankedList
from recommender.store import ServedList, Store, StoreError

from . import registry
from .assignment import assign
from .definition import Experiment, Variant
from .interleaving import list_rng, team_draft
from .variants import PinnedEngine

log = logging.getLogger(__name__)

EXPERIMENT_CHANGES = ("experiment",)


@dataclass(frozen=True)
class Routed:
    """An experiment's list: the list as built, with the experiment and variant it records."""

    ranked: RankedList
    experiment: str
    variant: str
    teams: tuple[str, ...] | None = None  # interleaving: the variant label of each item


class ExperimentRouter:
    """Experiments of one serving process.

    Parameters
    ----------
    store : Store
    models_dir : Path
    main : Engine
        The process's engine: served lists of experiments are written with its own.
    config : EngineConfig, optional
        For the variants' engines.
    clock : callable
    poll_interval : float
        Seconds between looks at the log's ``experiment`` changes.
    """

    def __init__(self, store: Store, models_dir: str | Path, main: Engine, config: EngineConfig | None = None,
                 clock: Callable[[], float] = time.time, poll_interval: float = 0.25):
        self.store = store
        self.models_dir = Path(models_dir)
        self.main = main
        self.config = config or EngineConfig()
        self.clock = clock
        self.poll_interval = poll_interval
        self._pos: int | None = None  # log position up to which experiment changes were read
        self._experiments: tuple[Experiment, ...] = ()
        self._engines: dict[str, PinnedEngine] = {}  # variant config -> its engine
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._background = False

    # -- following the log ---------------------------------------------------------------------
    def refresh(self) -> bool:
        """Take in experiments created or stopped since the last look; returns whether any were.

        The first call reads them all. Engines of new variants are loaded here (in the background
        thread when one runs), and those no running experiment needs any more are closed.
        """
        with self._lock:
            try:
                if self._pos is None:
                    pos = self.store.log_position()[0]
                else:
                    changes = self.store.changes_after(self._pos, kinds=EXPERIMENT_CHANGES)
                    ended = any(e.ends_at is not None and e.ends_at <= self.clock() for e in self._experiments)
                    if not changes and not ended:  # an experiment reaching its end frees its engines too
                        return False
                    pos = changes[-1].pos if changes else self._pos
                experiments = tuple(registry.load_all(self.store))
            except StoreError as exc:
                log.warning("experiments not refreshed (retried on the next poll): %s", exc)
                return False
            now = self.clock()
            live = tuple(e for e in experiments if not e.over(now))
            wanted = {v.config: v for e in live for v in e.variants}
            engines = dict(self._engines)
            for config, variant in wanted.items():
                if config not in engines:
                    engines[config] = self._start_engine(variant)
            retired = [engines.pop(config) for config in list(engines) if config not in wanted]
            self._engines, self._experiments, self._pos = engines, live, pos
        for engine in retired:
            engine.close()
        return True

    def _start_engine(self, variant: Variant) -> PinnedEngine:
        engine = PinnedEngine(self.store, self.models_dir, variant, self.config, self.clock)
        if not engine.ready:
            log.error("variant %s (model %s) cannot be loaded here: its lists are served outside the experiment "
                      "until it can (%s)", variant.label, variant.model_version, engine.last_reload_error)
        if self._background:
            engine.start_background()
        return engine

    def start_background(self) -> None:
        if self._thread is not None:
            return
        self._background = True
        self.refresh()
        for engine in self._engines.values():
            engine.start_background()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="newsrec-experiments", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:  # keep serving; the next tick retries
                log.exception("experiment refresh failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for engine in self._engines.values():
            engine.close()

    # -- which lists -------------------------------------------------------------------------
    @property
    def experiments(self) -> tuple[Experiment, ...]:
        return self._experiments

    def engine_of(self, variant: Variant) -> PinnedEngine | None:
        engine = self._engines.get(variant.config)
        if engine is not None and not engine.ready:
            engine.maybe_reload()  # retried on its own schedule (a missing bundle copied in since)
        return engine if engine is not None and engine.ready else None

    def _claim(self, list_type: str, unit_id: str | None) -> tuple[Experiment, list[PinnedEngine], list[int]] | None:
        """The experiment this list belongs to, the engines to build it from and their variant indices."""
        if not unit_id:
            return None
        if self._thread is None:  # no background thread (tests, in-process use): look now
            self.refresh()
        now = self.clock()
        for experiment in self._experiments:
            if not experiment.active(now, list_type):
                continue
            if experiment.mode == "interleave":
                chosen = [0, 1]
            else:
                chosen = [assign(experiment, unit_id)]
            engines = [self.engine_of(experiment.variants[i]) for i in chosen]
            if any(e is None for e in engines):
                return None  # a variant that cannot serve here: outside the experiment, not mislabelled
            return experiment, engines, chosen
        return None

    # -- lists -------------------------------------------------------------------------------
    def related(self, article_id: str, limit: int, user_id: str | None, unit_id: str | None,
                **options) -> Routed | None:
        """The related list of an experiment covering related lists (the unit is the reader, else
        the page view's anonymous id), or None: not in any experiment. ``options`` (section filters)
        go to every variant's engine."""
        claim = self._claim("related", unit_id)
        if claim is None:
            return None
        experiment, engines, chosen = claim
        lists = [engine.related(article_id, limit=limit, user_id=user_id, **options) for engine in engines]
        return self._finish(experiment, chosen, lists, user_id, limit, engines[0], cursor=None)

    def feed(self, user_id: str, limit: int, cursor: str | None, **options) -> Routed | None:
        """The reader's feed page inside an experiment covering feeds, or None."""
        claim = self._claim("feed", user_id)
        if claim is None:
            return None
        experiment, engines, chosen = claim
        # an A/B variant's engine logs its list's feature rows (sampled); an interleaved list is
        # neither engine's, so neither logs one
        lists = [engine.feed(user_id, limit=limit, cursor=cursor, log=len(engines) == 1, **options)
                 for engine in engines]
        return self._finish(experiment, chosen, lists, user_id, limit, engines[0], cursor=cursor, feed=True)

    def _finish(self, experiment: Experiment, chosen: list[int], lists: list[RankedList], user_id: str | None,
                limit: int, engine: PinnedEngine, cursor: str | None, feed: bool = False) -> Routed:
        now = self.clock()
        variants = [experiment.variants[i] for i in chosen]
        if len(lists) == 1:
            ranked, variant = lists[0], variants[0]
            self.main.log_served(ServedList(
                list_id=ranked.list_id, user_id=user_id or ANONYMOUS, ts=now,
                article_ids=tuple(i.article_id for i in ranked.items), offset=ranked.extra.get("offset", 0),
                model_version=ranked.model_version, variant=variant.label, strategy=ranked.strategy,
                experiment=experiment.name, config=variant.config))
            return Routed(ranked, experiment.name, variant.label)
        a, b = lists
        by_id = [{item.article_id: item for item in ranked.items} for ranked in lists]
        list_id = a.list_id
        ids, teams = team_draft([i.article_id for i in a.items], [i.article_id for i in b.items], limit,
                                list_rng(list_id))
        items = tuple(by_id[t][article_id] for article_id, t in zip(ids, teams))
        versions = list(dict.fromkeys(r.model_version for r in lists if r.model_version))
        strategies = list(dict.fromkeys(r.strategy for r in lists))
        next_cursor = None
        if feed and len(items) == limit and (a.next_cursor or b.next_cursor):
            next_cursor = engine.cursor_after(user_id, cursor, list(ids))
        label = "+".join(v.label for v in variants)
        ranked = RankedList(items, "+".join(strategies), "+".join(versions) or None, list_id,
                            next_cursor=next_cursor, extra=dict(a.extra))
        self.main.log_served(ServedList(
            list_id=list_id, user_id=user_id or ANONYMOUS, ts=now, article_ids=tuple(ids),
            offset=a.extra.get("offset", 0), model_version=ranked.model_version, variant=label,
            strategy=ranked.strategy, experiment=experiment.name,
            config="+".join(v.config for v in variants), teams="".join(str(t) for t in teams)))
        return Routed(ranked, experiment.name, label, tuple(variants[t].label for t in teams))
