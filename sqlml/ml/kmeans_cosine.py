"""k-means with DISTANCE_TYPE = 'COSINE': spherical k-means over scikit-learn's KMeans.

The preprocessed rows are L2-normalized (a row of zeros stays zeros), scikit-learn's KMeans runs
on them (Lloyd, Euclidean: on unit vectors |x - c|^2 = 2 - 2 x.c), and the fitted centroids are
normalized in turn, so that the nearest centroid by Euclidean distance is the one of smallest
cosine distance. The distance reported (ML.PREDICT's nearest_centroids_distance) is
1 - cosine similarity, in [0, 2]; the centroid_id its argmin (the first of equals). The recorded
centroids (ML.CENTROIDS, training info) are these unit vectors in the normalized space.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans

Array = np.ndarray[Any, Any]


def normalized(x: Array) -> Array:
    """Rows scaled to unit length (zeros stay zeros)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.sqrt(np.sum(x * x, axis=1, keepdims=True))
    return np.asarray(x / np.maximum(norms, np.finfo(np.float64).tiny))


class CosineKMeans(KMeans):  # type: ignore[misc]
    """KMeans on normalized rows, with normalized centroids and cosine distances."""

    def fit(self, X: Array, y: Any = None, sample_weight: Any = None) -> CosineKMeans:
        # (KMEANS_INIT_METHOD CUSTOM's rows come normalized: models._kmeans)
        super().fit(normalized(X), y, sample_weight=sample_weight)
        self.cluster_centers_ = normalized(getattr(self, "cluster_centers_"))  # noqa: B009
        return self

    def transform(self, X: Array) -> Array:
        return np.asarray(1.0 - normalized(X) @ self.cluster_centers_.T)

    def predict(self, X: Array, sample_weight: Any = None) -> Array:
        return np.asarray(np.argmin(self.transform(X), axis=1))
