"""Cold-start bridge: predict an article's collaborative vector from its text.

A brand-new article has no clicks, so its CF vector is predicted from its text embedding
by a ridge regression fitted on articles with enough evidence, then blended with the
learned vector in proportion to how much evidence the article has.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import Ridge
from sklearn.utils.validation import check_is_fitted


class TextToFactorBridge(BaseEstimator):
    """Ridge map from text embeddings (n, d) to item factors (n, k).

    Parameters
    ----------
    alpha : float
        Ridge penalty.
    min_interactions : int
        Articles with fewer interactions are not used to fit.
    blend_k : float
        Evidence at which learned and bridged vectors weigh equally: ``w = n / (n + blend_k)``.

    Attributes
    ----------
    coef_ : ndarray of float32, shape (d, k)
    intercept_ : ndarray of float32, shape (k,)
    n_fitted_ : int
    """

    def __init__(self, alpha=1.0, min_interactions=5, blend_k=10.0):
        self.alpha = alpha
        self.min_interactions = min_interactions
        self.blend_k = blend_k

    def fit(self, text_vectors: np.ndarray, item_factors: np.ndarray, evidence: np.ndarray) -> "TextToFactorBridge":
        """Fit on rows whose ``evidence`` (interaction count) reaches ``min_interactions``."""
        mask = np.asarray(evidence) >= self.min_interactions
        k = item_factors.shape[1]
        d = text_vectors.shape[1]
        self.n_fitted_ = int(mask.sum())
        if self.n_fitted_ < 2:
            self.coef_ = np.zeros((d, k), dtype=np.float32)
            self.intercept_ = np.zeros(k, dtype=np.float32)
            return self
        ridge = Ridge(alpha=self.alpha).fit(text_vectors[mask], item_factors[mask])
        self.coef_ = np.ascontiguousarray(ridge.coef_.T, dtype=np.float32)
        self.intercept_ = np.asarray(ridge.intercept_, dtype=np.float32)
        return self

    def predict(self, text_vectors: np.ndarray) -> np.ndarray:
        """Bridged factors, shape (n, k)."""
        check_is_fitted(self, "coef_")
        return np.asarray(text_vectors, dtype=np.float32) @ self.coef_ + self.intercept_

    def blend(self, learned: np.ndarray, bridged: np.ndarray, evidence: np.ndarray) -> np.ndarray:
        """``w * learned + (1 - w) * bridged`` with ``w = n / (n + blend_k)`` per row."""
        w = (np.asarray(evidence, dtype=np.float32) / (np.asarray(evidence, dtype=np.float32) + self.blend_k))[:, None]
        return (w * learned + (1.0 - w) * bridged).astype(np.float32)
