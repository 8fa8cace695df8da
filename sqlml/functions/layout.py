"""Where each stored feature sits in the model's feature matrix, from the version's feature_info.

Training records one entry per feature column (sqlml.ml.features.Preprocessor.info): automatic
preprocessing first (``numeric``: one column, with the mean and, when standardized, the standard
deviation; ``one_hot``: one column per category seen), then the TRANSFORM outputs used as they
are (``one_hot_encoder``: one column per category; the scalers: one column). The matrix columns
follow in that order; ML.WEIGHTS and ML.CENTROIDS read their values by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlml.store import ModelVersion

ONE_HOT = ("one_hot", "one_hot_encoder", "multi_hot")  # one column per category


@dataclass(frozen=True)
class Feature:
    name: str
    start: int  # its first column in the feature matrix
    categories: tuple[Any, ...] | None  # one-hot: one column each; None: one numeric column
    mean: float | None  # automatic preprocessing of a numeric column
    stddev: float | None  # set when the column was standardized
    # ML.FEATURE_INFO's statistics recorded at training (features.column_stats; empty before)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return 1 if self.categories is None else len(self.categories)


def features(version: ModelVersion) -> list[Feature]:
    found, at = [], 0
    for info in version.feature_info:
        categories = tuple(info.get("categories") or ()) if info["encoding"] in ONE_HOT else None
        numeric = info["encoding"] == "numeric"
        feature = Feature(
            name=str(info["column"]),
            start=at,
            categories=categories,
            mean=info.get("mean") if numeric else None,
            stddev=info.get("stddev") if numeric else None,
            stats=dict(info.get("stats") or {}),
        )
        found.append(feature)
        at += feature.width
    return found


def category_name(category: Any) -> str | None:
    """A category as BigQuery's STRING (NULL stays NULL)."""
    return None if category is None else str(category)
