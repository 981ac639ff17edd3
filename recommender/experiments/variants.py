"""A variant's engine: a serving :class:`~recommender.serving.engine.Engine` pinned to one model
version (and, optionally, ranking parameters), whatever version is live.

Why one engine per variant rather than one engine juggling several models: an engine's live state
(click and impression counters, articles published since training, their neighbours, caches) is
indexed by its model's catalog, so it cannot be shared between two models anyway. Each pinned
engine follows the change log itself, exactly as the main engine does, so every variant sees
every event, edit and takedown; its bundle is memory-mapped, so the workers of a host share its
pages. The price is one live state per variant and worker (see the README's sizing).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

from recommender.serving.engine import Engine, EngineConfig, _decode_cursor
from recommender.store import Store

from .definition import Variant


class PinnedEngine(Engine):
    """An engine serving ``variant.model_version`` with the variant's ranking parameters.

    It never follows promotions (``model`` changes), and writes no served lists itself: the
    router records each list once, with the experiment and variant (see :meth:`Engine.log_served`).
    It does write the feature log's rows of the lists it builds alone (an A/B variant's), as the
    main engine does for its own: without them a ranker trained on the log lacked every list of
    an experiment, all of the traffic while one covered every reader.
    """

    def __init__(self, store: Store, models_dir: str | Path, variant: Variant, config: EngineConfig | None = None,
                 clock: Callable[[], float] = time.time):
        self.variant = variant
        base = config or EngineConfig()
        # no lag: the main engine takes the clicks, so this one could not forget its answers for them
        super().__init__(store, models_dir, dataclasses.replace(base, lag_seconds=0.0), clock)

    @property
    def ready(self) -> bool:
        """Whether it serves its variant's model (False while the bundle cannot be loaded here)."""
        return self.model_version == self.variant.model_version

    def _log_impressions(self, user_id, ranked, now) -> None:
        return None  # the router records the served list, with the experiment and the variant

    # which version to serve: always the pinned one
    def _read_live(self) -> None:
        self._live, self._live_known = self.variant.model_version, True

    def _check_live(self) -> None:
        return None

    def _note_live(self, change) -> None:
        return None

    def _new_state(self, model):
        # the variant's parameters before the state is built (idempotent: a retry builds it again)
        model.ranking = self.variant.ranking(model.ranking)
        return super()._new_state(model)

    def _apply_visibility(self, state, newest: int | None = None) -> None:
        # The main engine writes takedowns on the same store connections (one per thread), and a
        # connection's ``data_version`` does not change for its own commits: the shortcut that
        # skips the read when nothing changed would miss them. One indexed read per list instead.
        self._visibility_seen.state = None
        super()._apply_visibility(state, newest)

    def cursor_after(self, user_id: str, cursor: str | None, page_ids: list[str]) -> str | None:
        """The feed cursor after a page built from several engines' lists (an interleaved page)."""
        served_before, keys = _decode_cursor(cursor, user_id)
        return self._next_cursor(self._state, user_id, served_before + len(page_ids), keys, page_ids)
