"""The fitted model as the service reads it: a loaded bundle's arrays, vocabularies and transform.

Bundle arrays are memory-mapped and never copied (gunicorn workers share their pages).
Articles are ordered by publication time in the bundle, so the serving window is a
suffix of every array. Articles published after training live in the serving layer's
``recommender.serving.catalog.FreshArticles`` overlay, embedded and bridged by this model.
"""

from __future__ import annotations

import logging
import threading
from typing import Mapping, NamedTuple

import numpy as np

from recommender.params import RankingParams, ranking_from_dict
from recommender.text.embedding import ArticleEmbedder
from recommender.vocab import Vocabulary

from .bundle import Bundle
from .cf import FoldIn
from .interactions import EventWeights
from .learned import LearnedRanker
from .plugins import DOCUMENT as PLUGINS_DOCUMENT
from .plugins import PluginError, load_plugins

log = logging.getLogger(__name__)

NO_REGION = -1


class ModelError(ValueError):
    """A bundle whose content does not make a usable model."""


class ArticleMeta(NamedTuple):
    """What a list item shows about an article (a named tuple: a list page makes twenty of them,
    at a third of a frozen dataclass's cost, and the cycle collector stops tracking them)."""

    article_id: str
    title: str
    url: str | None
    category: str
    region: str | None
    published_at: float


class Labels:
    """Category or region names <-> small integer codes, growing as new names arrive."""

    def __init__(self, names: list[str]):
        self.names = list(names)
        self._codes = {n: i for i, n in enumerate(self.names)}
        self._lock = threading.Lock()

    def code(self, name: str | None, add: bool = True) -> int:
        if name is None:
            return NO_REGION
        code = self._codes.get(name)
        if code is None:
            if not add:
                return -2
            with self._lock:
                code = self._codes.get(name)
                if code is None:
                    code = len(self.names)
                    self.names.append(name)
                    self._codes[name] = code
        return code

    def name(self, code: int) -> str | None:
        return self.names[code] if 0 <= code < len(self.names) else None


class ServingModel:
    """Read-only arrays of one bundle, plus how to embed an article that arrives.

    Attributes (n = articles in the bundle, d = text dims, k = CF factors)
    ----------
    item_ids : Vocabulary
    published_at : ndarray float64 (n,), ascending
    category_code, region_code : ndarray int16 (n,)
    text_vectors : ndarray float32 (n, d), L2-normalized
    item_factors : ndarray float32 (n, k), learned blended with bridged
    window_start : int
        Articles ``window_start:`` are the serving window at ``as_of``.
    text_nb_idx, text_nb_sim, cf_nb_idx, cf_nb_sim, coread_nb_idx, coread_nb_sim : (n - window_start, K)
        Neighbour lists of window articles (absolute indices, -1 padded).
    story : ndarray int32 (n,)
    """

    def __init__(self, version: str | None, arrays: Mapping[str, np.ndarray], documents: Mapping[str, object],
                 manifest: Mapping[str, object]):
        self.version = version
        self.manifest = dict(manifest)
        try:
            catalog = documents["catalog"]
            params = documents["params"]
            self.item_ids = Vocabulary(np.asarray(arrays["item_ids"]))
            self.published_at = arrays["published_at"]
            self.category_code = arrays["category_code"]
            self.region_code = arrays["region_code"]
            self.text_vectors = arrays["text_vectors"]
            self.item_factors = arrays["item_factors"]
            self.gram = np.asarray(arrays["cf_gram"], dtype=np.float64)
            self.story = arrays["story"]
            self.evidence = arrays["evidence"]
            self.window_start = int(params["window_start"])
            self.as_of = float(params["as_of"])
            self.has_cf = bool(params["has_cf"])
            self.alpha = float(params["alpha"])
            # how a reader's CF vector is solved at request time: as training solved it (see FoldIn)
            self.fold_in = FoldIn.from_bundle(arrays, params.get("cf_fold_in"), self.alpha)
            self.weights = EventWeights(**params["weights"])
            self.ranking: RankingParams = ranking_from_dict(params["ranking"])
            self.story_similarity = float(params["story_similarity"])
            self.neighbours = {
                name: (arrays[f"{name}_nb_idx"], arrays[f"{name}_nb_sim"]) for name in ("text", "cf", "coread")
            }
            self.counters = {name: arrays[f"pop_{name}"] for name in ("clicks", "impressions", "engagement")}
            # position-corrected click-through (a bundle from before it has neither: plain impressions)
            self.position_curve = arrays.get("position_curve")
            if "pop_expected" in arrays:
                self.counters["expected"] = arrays["pop_expected"]
            self.titles: list[str] = list(catalog["titles"])
            self.urls: list[str | None] = list(catalog["urls"])
            self.categories = list(catalog["categories"])
            self.regions = list(catalog["regions"])
            text_arrays = {k[len("text_"):]: v for k, v in arrays.items() if k.startswith("text_") and k != "text_vectors"
                           and not k.startswith("text_nb")}
            self.embedder = ArticleEmbedder.from_arrays(text_arrays, documents["embedder_params"])
            self.bridge_coef = np.ascontiguousarray(arrays["bridge_coef"], dtype=np.float32)
            self.bridge_intercept = np.asarray(arrays["bridge_intercept"], dtype=np.float32)
            # optional parts (bundles trained before them lack them): exposure statistics as of
            # as_of and the learned ranking stage (see recommender.serving.features)
            self.exposure_arrays = {k: v for k, v in arrays.items() if k.startswith("exposure_")}
            self.learned = LearnedRanker.from_bundle(arrays, documents.get("learned"))
        except KeyError as exc:
            raise ModelError(f"bundle {version} lacks {exc}; retrain with this version of newsrec") from None
        try:  # bring-your-own models: imported and restored now, so a missing package refuses the bundle
            self.plugins = load_plugins(documents.get(PLUGINS_DOCUMENT), arrays)
        except PluginError as exc:
            raise ModelError(f"bundle {version}: {exc}") from None
        n = len(self.item_ids)
        for name in ("published_at", "category_code", "region_code", "story", "evidence"):
            if getattr(self, name).shape[0] != n:
                raise ModelError(f"bundle {version}: {name} has {getattr(self, name).shape[0]} rows, expected {n}")
        if self.text_vectors.shape[0] != n or self.item_factors.shape[0] != n or len(self.titles) != n:
            raise ModelError(f"bundle {version}: arrays disagree on the number of articles ({n})")
        if not 0 <= self.window_start <= n:
            raise ModelError(f"bundle {version}: window_start {self.window_start} out of range")
        for name, (idx, sim) in self.neighbours.items():
            if idx.shape != sim.shape or idx.shape[0] != n - self.window_start:
                raise ModelError(f"bundle {version}: {name} neighbour lists have the wrong shape {idx.shape}")
            if idx.size and (idx.max() >= n or idx.min() < -1):
                raise ModelError(f"bundle {version}: {name} neighbour lists point outside the catalog")

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> "ServingModel":
        return cls(bundle.version, bundle.arrays, bundle.documents, bundle.manifest)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def dims(self) -> tuple[int, int]:
        return self.text_vectors.shape[1], self.item_factors.shape[1]

    def embed(self, title: str, body: str) -> tuple[np.ndarray, np.ndarray]:
        """Text vector (d,) and bridged CF vector (k,) of an article the bundle has not seen."""
        if self.embedder is None:
            return (np.zeros(self.text_vectors.shape[1], dtype=np.float32),
                    np.zeros(self.item_factors.shape[1], dtype=np.float32))
        text, _ = self.embedder.embed_one(title, body or "")
        text = np.asarray(text, dtype=np.float32).ravel()
        if self.has_cf:
            factors = text @ self.bridge_coef + self.bridge_intercept
        else:
            factors = np.zeros(self.item_factors.shape[1], dtype=np.float32)
        return text, factors.astype(np.float32)

    def meta(self, index: int) -> ArticleMeta:
        region = int(self.region_code[index])
        return ArticleMeta(
            article_id=self.item_ids.id(index), title=self.titles[index], url=self.urls[index],
            category=self.categories[int(self.category_code[index])],
            region=self.regions[region] if region >= 0 else None, published_at=float(self.published_at[index]),
        )

    def metas(self, index: np.ndarray) -> list[ArticleMeta]:
        """:meth:`meta` of each of ``index``: one gather per column, not a numpy scalar per field
        (a page's twenty: ~0.04 ms -> ~0.02; one alone is cheaper through :meth:`meta`)."""
        index = np.asarray(index, dtype=np.int64)
        ids, titles, urls, categories, regions = self.item_ids, self.titles, self.urls, self.categories, self.regions
        return [ArticleMeta(ids.id(i), titles[i], urls[i], categories[c], regions[r] if r >= 0 else None, p)
                for i, c, r, p in zip(index.tolist(), self.category_code[index].tolist(),
                                      self.region_code[index].tolist(), self.published_at[index].astype(float).tolist())]


def empty_model(params: RankingParams | None = None, text_dims: int = 8, factor_dims: int = 8) -> ServingModel:
    """A model with no articles and no text transform: the fallback when no bundle loads.

    Fresh articles then get zero vectors, so lists rank by popularity, freshness and follows.
    """
    model = ServingModel.__new__(ServingModel)
    model.version = None
    model.manifest = {}
    model.item_ids = Vocabulary([])
    model.published_at = np.zeros(0, dtype=np.float64)
    model.category_code = np.zeros(0, dtype=np.int16)
    model.region_code = np.zeros(0, dtype=np.int16)
    model.text_vectors = np.zeros((0, text_dims), dtype=np.float32)
    model.item_factors = np.zeros((0, factor_dims), dtype=np.float32)
    model.gram = np.eye(factor_dims)
    model.story = np.zeros(0, dtype=np.int32)
    model.evidence = np.zeros(0, dtype=np.int32)
    model.window_start = 0
    model.as_of = 0.0
    model.has_cf = False
    model.alpha = 1.0
    model.fold_in = FoldIn("als", model.alpha, 0.0, model.gram)
    model.weights = EventWeights()
    model.ranking = params or RankingParams()
    model.story_similarity = 0.5
    empty_nb = (np.zeros((0, 1), dtype=np.int32), np.zeros((0, 1), dtype=np.float32))
    model.neighbours = {"text": empty_nb, "cf": empty_nb, "coread": empty_nb}
    model.counters = {name: np.zeros(0) for name in ("clicks", "impressions", "engagement")}
    model.position_curve = None
    model.titles, model.urls, model.categories, model.regions = [], [], [], []
    model.embedder = None
    model.bridge_coef = np.zeros((text_dims, factor_dims), dtype=np.float32)
    model.bridge_intercept = np.zeros(factor_dims, dtype=np.float32)
    model.exposure_arrays = {}
    model.learned = None
    model.plugins = ()
    return model
