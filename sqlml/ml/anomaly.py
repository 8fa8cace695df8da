"""What ML.DETECT_ANOMALIES needs from training, recorded with the version (pure numpy).

BigQuery's contamination c marks as anomalous a row whose target metric is above the (1 - c)
quantile of the training rows' metric: the reconstruction's mean squared error for pca and
autoencoder models (pca.ERROR_QUANTILES), and for k-means the *normalized distance*: a row's
distance to each centroid divided by that cluster's radius, the smallest of these (BigQuery's
ML.DETECT_ANOMALIES reference). A cluster's radius is the root mean square of the distances from
the training rows assigned to it (the nearest centroid, as ML.PREDICT's centroid_id) to its
centroid, in the model's own distance (DISTANCE_TYPE). A cluster of radius 0 (a single row, or
identical rows) divides by 1 instead: its distances stay as they are.

ML.TRAINING_INFO's cluster_info is recorded here too, as BigQuery defines it: each cluster's
size (the training rows nearest it) and radius, the *mean* distance of those rows to it (not
the root mean square above), in the model's own distance; NULL for a cluster without rows.

Training records the radii and the quantiles of the training rows' normalized distances at
every 0.1% (1,001 values), so the threshold for any contamination needs no pass over the
training rows: the (1 - c) quantile is read off the recorded ones, interpolated linearly
between the two around it (exact where 1000 (1 - c) is a whole number: 0.02, 0.1, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
RADII = "cluster_radii"
DISTANCE_QUANTILES = "normalized_distance_quantiles"
CLUSTERS = "clusters"  # per centroid: {"size": rows nearest it, "radius": their mean distance}
STEPS = 1000  # quantiles recorded at every 1/STEPS


def quantiles(values: Array) -> list[float]:
    """The values' quantiles at every 0.1%, from the least to the largest."""
    return [float(v) for v in np.quantile(values, np.linspace(0.0, 1.0, STEPS + 1))]


def threshold(recorded: Sequence[float], contamination: float) -> float:
    """The (1 - contamination) quantile from the recorded ones (module docstring)."""
    position = round((1.0 - contamination) * STEPS, 9)  # (0.98 * 1000 is 980.0000000000001)
    low = min(int(np.floor(position)), STEPS)
    high = min(low + 1, STEPS)
    weight = max(position - low, 0.0)
    return float(recorded[low] + (recorded[high] - recorded[low]) * weight)


def radii(distances: Array) -> list[float]:
    """Each cluster's radius from the training rows' distances to every centroid (one column
    per centroid): 1.0 for a cluster without spread (module docstring)."""
    nearest = np.argmin(distances, axis=1)
    out = []
    for k in range(distances.shape[1]):
        own = distances[nearest == k, k]
        radius = float(np.sqrt(np.mean(own**2))) if len(own) else 0.0
        out.append(radius if radius > 0 else 1.0)
    return out


def clusters(distances: Array) -> list[dict[str, Any]]:
    """Each cluster's size and mean distance (ML.TRAINING_INFO's cluster_info) from the
    training rows' distances to every centroid; the nearest is the first of equals, as in
    ML.PREDICT."""
    nearest = np.argmin(distances, axis=1)
    out: list[dict[str, Any]] = []
    for k in range(distances.shape[1]):
        own = distances[nearest == k, k]
        radius = float(np.mean(own)) if len(own) else None
        out.append({"size": len(own), "radius": radius})
    return out


def normalized_distances(distances: Array, cluster_radii: Sequence[float]) -> Array:
    """Per row, the smallest of its distances each divided by its cluster's radius."""
    return np.asarray(np.min(distances / np.asarray(cluster_radii)[None, :], axis=1))


def kmeans_record(estimator: Any, x: Array) -> dict[str, Any]:
    """What a k-means model records for ML.DETECT_ANOMALIES, from the training rows."""
    distances = np.asarray(estimator.transform(x), dtype=np.float64)
    found = radii(distances)
    return {
        RADII: found,
        DISTANCE_QUANTILES: quantiles(normalized_distances(distances, found)),
        CLUSTERS: clusters(distances),
    }
