"""A bring-your-own scorer: favour one regional edition, and regions readers click more than
their share of articles."""

import numpy as np


class RegionScorer:
    def __init__(self, favour="Jabar", bonus=1.0):
        self.favour = favour  # scikit-learn style: __init__ only stores its parameters
        self.bonus = bonus

    def fit(self, interactions, articles):
        # each region's share of clicks, reads and shares over its share of articles
        self.regions_, code = np.unique(articles.region, return_inverse=True)
        clicked = code[interactions.article[interactions.is_positive]]
        clicks = np.bincount(clicked, minlength=self.regions_.size) / max(clicked.size, 1)
        share = np.bincount(code, minlength=self.regions_.size) / max(code.size, 1)
        self.lift_ = clicks / np.maximum(share, 1e-9)
        return self

    def get_state(self):  # numpy arrays and JSON only: bundles never hold pickles
        return {"regions": self.regions_, "lift": self.lift_}

    def set_state(self, state):
        self.regions_, self.lift_ = state["regions"], state["lift"]
        return self

    def score(self, reader, items):
        at = np.searchsorted(self.regions_, items.region).clip(0, self.regions_.size - 1)
        lift = np.where(self.regions_[at] == items.region, self.lift_[at], 1.0)  # a new region: neutral
        return np.minimum(lift, 3.0) / 3.0 + self.bonus * (items.region == self.favour)
