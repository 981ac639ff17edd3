"""Two-way mapping between external ids (strings) and contiguous matrix indices."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


class Vocabulary:
    """Ids <-> indices. The core works on indices; the API speaks ids.

    Parameters
    ----------
    ids : sequence of str
        Unique ids in index order.
    """

    def __init__(self, ids: Sequence[str] | np.ndarray = ()):
        self.ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.str_)
        self._index = {str(i): n for n, i in enumerate(self.ids.tolist())}
        if len(self._index) != len(self.ids):
            raise ValueError("Vocabulary ids must be unique.")
        self._ids = list(self._index)  # the dict's own strings: ``id`` without a numpy scalar per call

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def index(self, item_id: str) -> int:
        """Index of ``item_id``; raises KeyError if unknown."""
        return self._index[item_id]

    def get(self, item_id: str, default: int = -1) -> int:
        return self._index.get(item_id, default)

    def indices(self, item_ids: Iterable[str]) -> np.ndarray:
        """Indices for many ids, -1 where unknown."""
        get = self._index.get
        return np.array([get(i, -1) for i in item_ids], dtype=np.int64)

    def id(self, index: int) -> str:
        return self._ids[index]

    def extended(self, new_ids: Iterable[str]) -> "Vocabulary":
        """A new vocabulary with unseen ``new_ids`` appended (self is unchanged)."""
        extra = [i for i in dict.fromkeys(new_ids) if i not in self._index]
        if not extra:
            return self
        return Vocabulary(np.concatenate([self.ids, np.asarray(extra, dtype=np.str_)]))
