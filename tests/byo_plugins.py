"""Bring-your-own plugins the tests configure by import path (``tests.byo_plugins:Class``)."""

from __future__ import annotations

import numpy as np


class OldestInWindow:
    """The ``k`` oldest articles of the catalog: as a candidate source it proposes them, as a
    scorer it scores them 1 (everything else 0). Old articles are rarely anyone's candidates."""

    def __init__(self, k: int = 30):
        self.k = k

    def fit(self, interactions, articles):
        order = np.sort(articles.published_at)
        self.cut_ = float(order[min(self.k, order.size) - 1])
        return self

    def get_state(self):
        return {"cut": self.cut_}

    def set_state(self, state):
        self.cut_ = float(state["cut"])
        return self

    def candidates(self, reader, items, k):
        return np.flatnonzero(items.published_at <= self.cut_)[:k]

    def score(self, reader, items):
        return (items.published_at <= self.cut_).astype(float)


class RegionEmbedder:
    """One-hot vectors of an article's regional edition (none: the zero vector)."""

    def fit(self, interactions, articles):
        self.regions_ = np.unique(articles.region[articles.region != ""])
        return self

    def get_state(self):
        return {"regions": self.regions_}

    def set_state(self, state):
        self.regions_ = np.asarray(state["regions"])
        return self

    def embed(self, items):
        out = np.zeros((len(items), max(self.regions_.size, 1)))
        at = np.searchsorted(self.regions_, items.region).clip(0, max(self.regions_.size - 1, 0))
        hit = self.regions_[at] == items.region if self.regions_.size else np.zeros(len(items), bool)
        out[np.flatnonzero(hit), at[hit]] = 1.0
        return out


class Faulty:
    """A scorer that fits fine and then fails at serving time in the way ``mode`` says:
    ``raise``, ``shape`` (one score too few), ``nan``; ``ok`` scores 0 everywhere."""

    def __init__(self, mode: str = "raise"):
        self.mode = mode

    def fit(self, interactions, articles):
        self.seen_ = int(len(interactions))
        return self

    def get_state(self):
        return {"seen": self.seen_, "mode": self.mode}

    def set_state(self, state):
        self.seen_, self.mode = state["seen"], state["mode"]
        return self

    def score(self, reader, items):
        if self.mode == "raise":
            raise RuntimeError("the data scientist's bug")
        if self.mode == "shape":
            return np.zeros(len(items) - 1)
        if self.mode == "nan":
            return np.full(len(items), np.nan)
        return np.zeros(len(items))


class NoSelf:
    """fit forgets to return self."""

    def fit(self, interactions, articles):
        return None

    def get_state(self):
        return {}

    def set_state(self, state):
        return self

    def score(self, reader, items):
        return np.zeros(len(items))


class Pickly:
    """get_state returns an object that is neither an array nor JSON."""

    def fit(self, interactions, articles):
        return self

    def get_state(self):
        return {"model": object()}

    def set_state(self, state):
        return self

    def score(self, reader, items):
        return np.zeros(len(items))
