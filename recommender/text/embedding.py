"""Article vectors: word n-gram TF-IDF with a weighted title, and its truncated SVD.

On real Indonesian news (``benchmarks/text_quality.py``) plain word TF-IDF with the title
counted three times is the strongest signal for "related articles"; the dense SVD vectors are
compact features for models that need a fixed, small dimension. Both come from one fitted
vocabulary, and one new article is embedded without scikit-learn machinery in well under a
millisecond (:meth:`ArticleEmbedder.embed_one`).
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.extmath import randomized_svd
from sklearn.utils.validation import check_is_fitted

from .cleaning import STOP_WORDS, strip_furniture, tokenize, unescape_html

__all__ = ["ArticleEmbedder"]

log = logging.getLogger(__name__)

_ARRAY_KEYS = ("vocabulary", "idf", "components")


def _ngrams(tokens: list[str], ngram_range: tuple[int, int]) -> list[str]:
    """Word n-grams joined by a space, like scikit-learn's ``CountVectorizer``."""
    lo, hi = ngram_range
    terms = list(tokens) if lo == 1 else []
    for n in range(max(lo, 2), hi + 1):
        if n == 2:
            terms.extend([a + " " + b for a, b in zip(tokens, tokens[1:])])
        else:
            terms.extend([" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)])
    return terms


def _sublinear(values: np.ndarray) -> np.ndarray:
    """``1 + ln(x)`` for x >= 1 and ``x`` below, in place.

    Weighted counts can be fractional (``title_weight < 1``); plain ``1 + ln(x)`` would turn
    them negative. The two branches meet at x = 1, so the map stays monotone and positive.
    """
    big = values >= 1
    values[big] = 1 + np.log(values[big])
    return values


def _l2_normalize_rows(X: sp.csr_matrix) -> sp.csr_matrix:
    """Scale the rows of a CSR matrix to unit length in place; zero rows stay zero."""
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    data = X.data.astype(np.float64)
    norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=X.shape[0]))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    X.data = (data * scale[rows]).astype(X.dtype)
    return X


def _l2_normalize_dense(Z: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    np.divide(Z, norms, out=Z, where=norms > 0)
    return Z


def _ids_growing(vocabulary: dict[str, int], terms: list[str]) -> list[int]:
    """Column of every term, adding unseen terms to ``vocabulary``."""
    return [vocabulary.setdefault(t, len(vocabulary)) for t in terms]


def _ids_known(vocabulary: dict[str, int], terms: list[str]) -> list[int]:
    """Column of every known term; unknown terms are skipped."""
    return [i for i in map(vocabulary.get, terms) if i is not None]


def _check_pairs(X: Iterable[Sequence[str]]) -> list[tuple[str, str]]:
    if isinstance(X, (str, bytes)):
        raise TypeError("X must be a sequence of (title, body) pairs, not a single string.")
    pairs = []
    for i, item in enumerate(X):
        if isinstance(item, (str, bytes)) or len(item) != 2:
            raise ValueError(
                f"X[{i}] must be a (title, body) pair; wrap a lone text as (title, '') or ('', body)."
            )
        title, body = item
        pairs.append(("" if title is None else str(title), "" if body is None else str(body)))
    return pairs


class ArticleEmbedder(TransformerMixin, BaseEstimator):
    """Word n-gram TF-IDF of (title, body) pairs and its truncated SVD.

    Term weights are ``title_weight * title_counts + body_counts``, sublinear TF, smooth IDF
    (``ln((1 + n) / (1 + df)) + 1``) and L2-normalized rows. Bodies go through
    :func:`recommender.text.strip_furniture` first, so editor "Baca juga" links do not leak
    other articles' titles.

    Parameters
    ----------
    n_components : int, default=128
        SVD dimension; clamped to what the corpus allows (see ``n_components_``).
    title_weight : float, default=3.0
        How many body occurrences one title occurrence is worth.
    ngram_range : tuple of (int, int), default=(1, 2)
        Smallest and largest word n-gram.
    max_features : int or None, default=200_000
        Keep the most frequent terms (total count over the corpus); None keeps all.
    min_df : int or float, default=1
        Drop terms in fewer documents (an int) or a smaller share of documents (a float).
    max_df : int or float, default=0.9
        Drop terms in more documents (an int) or a larger share (a float). Never drops a
        term that occurs in a single document, so a one-article corpus still fits.
    sublinear_tf : bool, default=True
        Use ``1 + ln(tf)`` instead of ``tf``.
    stop_words : {"indonesian"} or None, default="indonesian"
        ``"indonesian"`` drops :data:`recommender.text.STOP_WORDS`.
    random_state : int or None, default=None
        Seed of the randomized SVD. Keep it an int (or None) so ``get_params()`` stays
        JSON-able.

    Attributes
    ----------
    vocabulary_ : dict of str to int
        Term -> column.
    idf_ : ndarray of shape (n_features,), float32
    components_ : ndarray of shape (n_components_, n_features), float32
        Right singular vectors of the TF-IDF matrix.
    n_components_ : int
        Dimension actually used: ``min(n_components, n_docs - 1, n_features - 1)``, at
        least 1.
    """

    def __init__(
        self,
        n_components: int = 128,
        title_weight: float = 3.0,
        ngram_range: tuple[int, int] = (1, 2),
        max_features: int | None = 200_000,
        min_df: int | float = 1,
        max_df: int | float = 0.9,
        sublinear_tf: bool = True,
        stop_words: str | None = "indonesian",
        random_state: int | None = None,
    ):
        self.n_components = n_components
        self.title_weight = title_weight
        self.ngram_range = ngram_range
        self.max_features = max_features
        self.min_df = min_df
        self.max_df = max_df
        self.sublinear_tf = sublinear_tf
        self.stop_words = stop_words
        self.random_state = random_state

    # --- parameters and analysis ----------------------------------------------------------

    def _validate_params(self) -> None:
        if not isinstance(self.n_components, numbers.Integral) or self.n_components < 1:
            raise ValueError(f"n_components must be a positive int, got {self.n_components!r}.")
        if not isinstance(self.title_weight, numbers.Real) or not self.title_weight >= 0:
            raise ValueError(f"title_weight must be a number >= 0, got {self.title_weight!r}.")
        lo, hi = self.ngram_range
        if not (isinstance(lo, numbers.Integral) and isinstance(hi, numbers.Integral) and 1 <= lo <= hi):
            raise ValueError(
                f"ngram_range must be (min_n, max_n) with 1 <= min_n <= max_n, got {self.ngram_range!r}."
            )
        if self.max_features is not None and (
            not isinstance(self.max_features, numbers.Integral) or self.max_features < 1
        ):
            raise ValueError(f"max_features must be a positive int or None, got {self.max_features!r}.")
        for name in ("min_df", "max_df"):
            value = getattr(self, name)
            ok = (isinstance(value, numbers.Integral) and value >= 0) or (
                isinstance(value, numbers.Real) and 0.0 <= value <= 1.0
            )
            if not ok:
                raise ValueError(f"{name} must be an int >= 0 or a float in [0, 1], got {value!r}.")
        if self.stop_words not in ("indonesian", None):
            raise ValueError(f'stop_words must be "indonesian" or None, got {self.stop_words!r}.')

    def _analyze(self, title: str, body: str) -> tuple[list[str], list[str]]:
        """(title terms, body terms) of one article."""
        stop = STOP_WORDS if self.stop_words == "indonesian" else None
        ngram_range = tuple(self.ngram_range)
        title_terms = _ngrams(tokenize(unescape_html(title), stop), ngram_range) if title else []
        body_terms = _ngrams(tokenize(strip_furniture(body), stop), ngram_range) if body else []
        return title_terms, body_terms

    def _count_matrices(self, pairs: list[tuple[str, str]], vocabulary: dict[str, int], grow: bool):
        """Title and body count matrices (CSR, float32) over ``vocabulary``.

        With ``grow`` unseen terms are added to ``vocabulary``; otherwise they are skipped.
        """
        indices = {"title": [], "body": []}
        indptr = {"title": [0], "body": [0]}
        ids = _ids_growing if grow else _ids_known
        for title, body in pairs:
            title_terms, body_terms = self._analyze(title, body)
            for part, terms in (("title", title_terms), ("body", body_terms)):
                found = ids(vocabulary, terms)
                indices[part].extend(found)
                indptr[part].append(indptr[part][-1] + len(found))
        shape = (len(pairs), len(vocabulary))
        out = []
        for part in ("title", "body"):
            idx = np.asarray(indices[part], dtype=np.int64)
            ptr = np.asarray(indptr[part], dtype=np.int64)
            M = sp.csr_matrix((np.ones(idx.size, dtype=np.float32), idx, ptr), shape=shape)
            M.sum_duplicates()
            out.append(M)
        return out

    def _weight(self, title_counts: sp.csr_matrix, body_counts: sp.csr_matrix) -> sp.csr_matrix:
        """Weighted counts -> sublinear TF -> IDF -> L2-normalized rows."""
        W = (title_counts * np.float32(self.title_weight) + body_counts).tocsr()
        W.sum_duplicates()
        W.eliminate_zeros()
        W = W.astype(np.float32, copy=False)
        if self.sublinear_tf:
            _sublinear(W.data)
        W.data *= self.idf_[W.indices]
        return _l2_normalize_rows(W)

    # --- fitting ----------------------------------------------------------------------------

    def fit(self, X: Iterable[Sequence[str]], y: Any = None) -> ArticleEmbedder:
        """Learn the vocabulary, IDF and SVD components.

        Parameters
        ----------
        X : sequence of (title, body) pairs, length n_articles
            Raw bodies are fine: furniture is stripped here.
        y : ignored

        Returns
        -------
        self
        """
        self._fit(_check_pairs(X))
        return self

    def fit_transform(self, X: Iterable[Sequence[str]], y: Any = None) -> np.ndarray:
        """Fit and return the dense vectors of ``X``, tokenizing it only once.

        Parameters
        ----------
        X : sequence of (title, body) pairs, length n_articles
        y : ignored

        Returns
        -------
        ndarray of shape (n_articles, n_components_), float32
        """
        W = self._fit(_check_pairs(X))
        return _l2_normalize_dense(np.asarray(W @ self._projection, dtype=np.float32))

    def _fit(self, pairs: list[tuple[str, str]]) -> sp.csr_matrix:
        """Fit on validated pairs; returns their TF-IDF matrix (not kept)."""
        self._validate_params()
        n_docs = len(pairs)
        if n_docs == 0:
            raise ValueError("X is empty; fit needs at least one (title, body) pair.")
        vocabulary: dict[str, int] = {}
        T, B = self._count_matrices(pairs, vocabulary, grow=True)
        if not vocabulary:
            raise ValueError(
                "Empty vocabulary: every article is empty or only stop words. "
                "Check the input texts, or pass stop_words=None."
            )
        C = (T + B).tocsr()
        df = np.bincount(C.indices, minlength=C.shape[1])
        total = np.asarray(C.sum(axis=0)).ravel()

        min_count = self.min_df if isinstance(self.min_df, numbers.Integral) else self.min_df * n_docs
        max_count = self.max_df if isinstance(self.max_df, numbers.Integral) else self.max_df * n_docs
        keep = (df >= min_count) & (df <= max(max_count, 1))
        kept = np.flatnonzero(keep)
        if self.max_features is not None and kept.size > self.max_features:
            order = np.lexsort((kept, -total[kept]))  # most frequent first, ties by first seen
            kept = kept[order[: self.max_features]]
        if kept.size == 0:
            raise ValueError(
                f"After pruning no terms remain (min_df={self.min_df!r}, max_df={self.max_df!r} "
                f"on {n_docs} articles). Lower min_df or raise max_df."
            )
        terms = list(vocabulary)
        kept = sorted(kept.tolist(), key=terms.__getitem__)  # columns in term order
        self.vocabulary_ = {terms[old]: new for new, old in enumerate(kept)}
        n_features = len(kept)

        idf = np.log((1.0 + n_docs) / (1.0 + df[kept])) + 1.0
        self.idf_ = idf.astype(np.float32)
        W = self._weight(T[:, kept], B[:, kept])

        k = max(1, min(self.n_components, n_docs - 1, n_features - 1))
        if k < self.n_components:
            log.info(
                "n_components clamped from %d to %d (%d articles, %d terms)",
                self.n_components, k, n_docs, n_features,
            )
        _, _, Vt = randomized_svd(W, k, n_iter=5, random_state=self.random_state)
        self._set_components(Vt)
        log.info("fitted %d articles: %d terms, %d components", n_docs, n_features, k)
        return W

    def _set_components(self, components: np.ndarray) -> None:
        self.components_ = np.ascontiguousarray(components, dtype=np.float32)
        self.n_components_ = int(self.components_.shape[0])
        # (n_features, n_components) copy: one article's projection gathers whole rows.
        self._projection = np.ascontiguousarray(self.components_.T)

    # --- transforming -----------------------------------------------------------------------

    def transform_tfidf(self, X: Iterable[Sequence[str]]) -> sp.csr_matrix:
        """L2-normalized TF-IDF rows: exact text similarity is ``A @ B.T``.

        Parameters
        ----------
        X : sequence of (title, body) pairs, length n_articles

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_articles, n_features), float32
            Articles without known terms give zero rows.
        """
        check_is_fitted(self)
        T, B = self._count_matrices(_check_pairs(X), self.vocabulary_, grow=False)
        return self._weight(T, B)

    def transform(self, X: Iterable[Sequence[str]]) -> np.ndarray:
        """Dense L2-normalized SVD vectors.

        Parameters
        ----------
        X : sequence of (title, body) pairs, length n_articles

        Returns
        -------
        ndarray of shape (n_articles, n_components_), float32
            Articles without known terms give zero rows.
        """
        check_is_fitted(self)
        Z = np.asarray(self.transform_tfidf(X) @ self._projection, dtype=np.float32)
        return _l2_normalize_dense(Z)

    def embed_one(self, title: str, body: str) -> tuple[np.ndarray, sp.csr_matrix]:
        """Embed one new article without building batch matrices (the request path).

        Parameters
        ----------
        title, body : str

        Returns
        -------
        dense : ndarray of shape (n_components_,), float32
            Same as ``transform([(title, body)])[0]`` up to float rounding.
        tfidf : scipy.sparse.csr_matrix of shape (1, n_features), float32
            Same as ``transform_tfidf([(title, body)])`` up to float rounding.
        """
        check_is_fitted(self)
        title_terms, body_terms = self._analyze(title or "", body or "")
        title_ids = _ids_known(self.vocabulary_, title_terms)
        body_ids = _ids_known(self.vocabulary_, body_terms)
        n_features = self.idf_.shape[0]
        if not title_ids and not body_ids:
            empty = sp.csr_matrix((1, n_features), dtype=np.float32)
            return np.zeros(self.n_components_, dtype=np.float32), empty
        ids = np.array(title_ids + body_ids, dtype=np.int64)
        weights = np.ones(ids.size, dtype=np.float64)
        weights[: len(title_ids)] = self.title_weight
        cols, inverse = np.unique(ids, return_inverse=True)
        w = np.bincount(inverse, weights=weights).astype(np.float32)
        keep = w > 0  # title-only terms with title_weight == 0
        cols, w = cols[keep], w[keep]
        if self.sublinear_tf:
            _sublinear(w)
        w *= self.idf_[cols]
        norm = np.sqrt(np.dot(w.astype(np.float64), w))
        if norm > 0:
            w /= np.float32(norm)
        tfidf = sp.csr_matrix(
            (w, cols.astype(np.int32), np.array([0, cols.size], dtype=np.int32)),
            shape=(1, n_features),
        )
        dense = w @ self._projection[cols]
        dense_norm = np.linalg.norm(dense)
        if dense_norm > 0:
            dense /= dense_norm
        return dense.astype(np.float32, copy=False), tfidf

    # --- persistence ------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as plain arrays (``np.save(..., allow_pickle=False)`` works).

        Returns
        -------
        dict
            ``"vocabulary"``: str array of shape (n_features,) in column order;
            ``"idf"``: float32 (n_features,); ``"components"``: float32
            (n_components_, n_features). Rebuild with :meth:`from_arrays` and
            ``get_params()``.
        """
        check_is_fitted(self)
        terms = [t for t, _ in sorted(self.vocabulary_.items(), key=itemgetter(1))]
        return {
            "vocabulary": np.array(terms, dtype=np.str_),
            "idf": self.idf_.copy(),
            "components": self.components_.copy(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> ArticleEmbedder:
        """Rebuild a fitted embedder from :meth:`to_arrays` output and ``get_params()``.

        Parameters
        ----------
        arrays : mapping with keys "vocabulary", "idf", "components"
        params : mapping
            ``get_params()`` of the fitted embedder, e.g. after a JSON round trip.

        Returns
        -------
        ArticleEmbedder
            Gives bitwise the same ``transform`` and ``transform_tfidf`` output.
        """
        missing = [k for k in _ARRAY_KEYS if k not in arrays]
        if missing:
            raise ValueError(f"arrays is missing {missing}; pass the dict returned by to_arrays().")
        params = dict(params)
        if "ngram_range" in params:
            params["ngram_range"] = tuple(params["ngram_range"])
        est = cls(**params)
        terms = np.asarray(arrays["vocabulary"])
        idf = np.asarray(arrays["idf"])
        components = np.asarray(arrays["components"])
        n_features = terms.shape[0]
        if terms.ndim != 1 or terms.dtype.kind != "U":
            raise ValueError(
                f"vocabulary must be a 1-D str array, got dtype {terms.dtype} and shape {terms.shape}."
            )
        if idf.shape != (n_features,) or components.ndim != 2 or components.shape[1] != n_features:
            raise ValueError(
                f"Inconsistent arrays: vocabulary {terms.shape}, idf {idf.shape}, components "
                f"{components.shape}; they must come from the same to_arrays() call."
            )
        est.vocabulary_ = {t: i for i, t in enumerate(terms.tolist())}
        if len(est.vocabulary_) != n_features:
            raise ValueError("vocabulary has duplicate terms; it must come from to_arrays().")
        est.idf_ = np.ascontiguousarray(idf, dtype=np.float32)
        est._set_components(components)
        return est
