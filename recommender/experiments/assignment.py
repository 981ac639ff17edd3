"""Deterministic, sticky assignment of readers to variants.

A reader's bucket is a hash of the experiment's salt and the reader id, nothing else: every
worker of every replica computes the same variant without asking anyone, the reader keeps it for
the whole experiment, and two experiments (two salts) assign independently.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from .definition import SHARE_TOTAL, Experiment

BUCKETS = 10_000  # resolution of the shares: 0.01 %


def bucket(salt: str, unit_id: str) -> int:
    """The unit's bucket in ``[0, BUCKETS)``: the first 8 bytes of SHA-256(salt | id), modulo."""
    digest = hashlib.sha256(f"{salt}|{unit_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def bounds(shares: Sequence[int]) -> np.ndarray:
    """Upper bucket bound of each variant, shape (n_variants,): variant i owns ``[bounds[i-1], bounds[i])``."""
    return np.cumsum(np.asarray(shares, dtype=np.int64)) * (BUCKETS // SHARE_TOTAL)


def assign(experiment: Experiment, unit_id: str) -> int:
    """Index of the variant ``unit_id`` (a reader id, or a page view's anonymous id) sees."""
    return int(np.searchsorted(bounds(experiment.shares), bucket(experiment.salt, unit_id), side="right"))


def assign_many(experiment: Experiment, unit_ids: Sequence[str]) -> np.ndarray:
    """:func:`assign` for many units, int64 shape (n,) (simulations, reports)."""
    buckets = np.fromiter((bucket(experiment.salt, u) for u in unit_ids), dtype=np.int64, count=len(unit_ids))
    return np.searchsorted(bounds(experiment.shares), buckets, side="right")
