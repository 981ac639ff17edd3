"""The learned ranking stage's model: click probability from list-time features.

:class:`LearnedRanker` fits a scikit-learn gradient-boosted tree ensemble
(``HistGradientBoostingClassifier``) or a logistic regression on the feature rows of served
lists (:mod:`recommender.serving.features`) and their clicks, then keeps only plain arrays: the
trees as node tables (feature, threshold, children, leaf value), the regression as scaled
coefficients. It scores with those arrays alone, so what a bundle holds (``learned_*.npy``
plus a JSON document, read with ``allow_pickle=False``) scores exactly as the fitted model did.
"""

from __future__ import annotations

import numpy as np

KINDS = ("hgb", "logistic")
ARRAY_PREFIX = "learned_"


class NotFittedError(RuntimeError):
    """The ranker was used before ``fit``."""


class LearnedRanker:
    """Scores candidates by predicted click log-odds; higher is better.

    Parameters
    ----------
    kind : {"hgb", "logistic"}
        Gradient-boosted trees or a logistic regression on standardized features.
    max_iter : int
        Boosting rounds (hgb) or solver iterations (logistic).
    learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization : float, int, int, float
        Tree settings (hgb).
    C : float
        Inverse regularization strength (logistic).
    random_state : int

    Attributes
    ----------
    feature_names_ : list of str
        The columns ``X`` must hold, in order.
    intercept_ : float
        Baseline log-odds (hgb) or the regression's intercept.
    coef_, mean_, scale_ : ndarray of float64, shape (f,)
        Logistic only: ``score = ((X - mean_) / scale_) @ coef_ + intercept_``.
    nodes_feature_, nodes_threshold_, nodes_left_, nodes_right_, nodes_value_ : ndarray, shape (m,)
        hgb only: every tree's nodes in one table, child indices absolute; a leaf has
        ``nodes_feature_ == -1``. ``nodes_missing_left_`` (bool) sends NaN left.
    roots_ : ndarray of int64, shape (t,)
        hgb only: the root node of each tree.
    depth_ : int
        hgb only: the deepest leaf (traversal steps).
    """

    def __init__(self, kind: str = "hgb", max_iter: int = 100, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 50, l2_regularization: float = 1.0,
                 C: float = 1.0, random_state: int = 0):
        self.kind = kind
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.C = C
        self.random_state = random_state

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("kind", "max_iter", "learning_rate", "max_leaf_nodes",
                                               "min_samples_leaf", "l2_regularization", "C", "random_state")}

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, feature_names: list[str], sample_weight: np.ndarray | None = None,
            serving_values: dict[str, float] | None = None) -> "LearnedRanker":
        """Fit on feature rows ``X`` (n, f) and clicks ``y`` (n,) of 0/1; ``sample_weight`` (n,) optional
        (e.g. inverse position propensities). ``serving_values`` names training-only columns (the
        logged position) and the constant serving scores them with."""
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).ravel()
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X must be (n, f) with one row per label; got {X.shape} and {y.shape}")
        if X.shape[1] != len(feature_names):
            raise ValueError(f"X has {X.shape[1]} columns but {len(feature_names)} feature names")
        if np.unique(y).size < 2:
            raise ValueError("training needs both clicked and not clicked rows")
        self.feature_names_ = list(feature_names)
        self.serving_values_ = {k: float(v) for k, v in (serving_values or {}).items()}
        if self.kind == "logistic":
            self._fit_logistic(X, y, sample_weight)
        else:
            self._fit_hgb(X, y, sample_weight)
        return self

    def _fit_logistic(self, X, y, sample_weight) -> None:
        from sklearn.linear_model import LogisticRegression

        X = np.nan_to_num(X)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        est = LogisticRegression(C=self.C, max_iter=max(self.max_iter, 200))
        est.fit((X - self.mean_) / self.scale_, y, sample_weight=sample_weight)
        self.coef_ = est.coef_.ravel().astype(np.float64)
        self.intercept_ = float(est.intercept_[0])

    def _fit_hgb(self, X, y, sample_weight) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        est = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            early_stopping=False, random_state=self.random_state)
        est.fit(X, y, sample_weight=sample_weight)
        tables, roots, offset = [], [], 0
        for (tree,) in est._predictors:  # binary: one tree per iteration
            nodes = tree.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            leaf = nodes["is_leaf"].astype(bool)
            tables.append((np.where(leaf, -1, nodes["feature_idx"]).astype(np.int64),
                           nodes["num_threshold"].astype(np.float64),
                           np.where(leaf, -1, nodes["left"].astype(np.int64) + offset),
                           np.where(leaf, -1, nodes["right"].astype(np.int64) + offset),
                           nodes["value"].astype(np.float64), nodes["missing_go_to_left"].astype(bool),
                           nodes["depth"].astype(np.int64)))
            roots.append(offset)
            offset += nodes.shape[0]
        cols = list(zip(*tables))
        (self.nodes_feature_, self.nodes_threshold_, self.nodes_left_, self.nodes_right_, self.nodes_value_,
         self.nodes_missing_left_) = (np.concatenate(c) for c in cols[:6])
        self.depth_ = int(max(int(d.max()) for d in cols[6]))
        self.roots_ = np.asarray(roots, dtype=np.int64)
        self.intercept_ = float(np.ravel(est._baseline_prediction)[0])
        got = self.decision_function(X[:512])
        want = est.decision_function(X[:512])
        if not np.allclose(got, want, rtol=1e-9, atol=1e-9):  # a changed scikit-learn tree layout
            raise RuntimeError("the exported trees do not reproduce scikit-learn's scores; "
                               "check the installed scikit-learn version")

    # -- scoring -----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "feature_names_"):
            raise NotFittedError("This LearnedRanker is not fitted yet. Call fit first.")

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Click log-odds of each row of ``X`` (n, f), shape (n,)."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names_):
            raise ValueError(f"X must have {len(self.feature_names_)} columns ({', '.join(self.feature_names_)}); "
                             f"got shape {X.shape}")
        if self.kind == "logistic":
            return ((np.nan_to_num(X) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        n = X.shape[0]
        node = np.broadcast_to(self.roots_, (n, self.roots_.size)).copy()  # (n, t)
        rows = np.arange(n)[:, None]
        for _ in range(self.depth_):
            feature = self.nodes_feature_[node]
            inner = feature >= 0
            if not inner.any():
                break
            value = X[rows, np.maximum(feature, 0)]
            left = np.where(np.isnan(value), self.nodes_missing_left_[node], value <= self.nodes_threshold_[node])
            node = np.where(inner, np.where(left, self.nodes_left_[node], self.nodes_right_[node]), node)
        return self.nodes_value_[node].sum(axis=1) + self.intercept_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Click probability of each row, shape (n,)."""
        return 1.0 / (1.0 + np.exp(-self.decision_function(X)))

    # -- bundle ------------------------------------------------------------------------------
    def to_bundle(self) -> tuple[dict[str, np.ndarray], dict]:
        """``(arrays, document)``: plain arrays named ``learned_*`` and a JSON-able description."""
        self._check_fitted()
        names = (("coef", "mean", "scale") if self.kind == "logistic" else
                 ("nodes_feature", "nodes_threshold", "nodes_left", "nodes_right", "nodes_value",
                  "nodes_missing_left", "roots"))
        arrays = {f"{ARRAY_PREFIX}{name}": np.ascontiguousarray(getattr(self, f"{name}_")) for name in names}
        document = {"params": self.get_params(), "feature_names": self.feature_names_,
                    "serving_values": self.serving_values_,
                    "intercept": self.intercept_, "depth": getattr(self, "depth_", 0)}
        return arrays, document

    @classmethod
    def from_bundle(cls, arrays, document: dict | None) -> "LearnedRanker | None":
        """The ranker a bundle holds, or None when it holds none."""
        if not document:
            return None
        ranker = cls(**document["params"])
        ranker.feature_names_ = list(document["feature_names"])
        ranker.intercept_ = float(document["intercept"])
        ranker.serving_values_ = {k: float(v) for k, v in document.get("serving_values", {}).items()}
        ranker.depth_ = int(document.get("depth", 0))
        for key, value in arrays.items():
            if key.startswith(ARRAY_PREFIX):
                setattr(ranker, f"{key[len(ARRAY_PREFIX):]}_", np.asarray(value))
        return ranker
