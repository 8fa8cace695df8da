"""CREATE MODEL's ``validate_data`` option: the new training rows against the statistics stored
with the version that serves (docs/sql.md, "Data monitoring"; docs/design/lifecycle.md).

- ``'warn'`` (the default): each finding is a NOTICE (the session's progress channel, a
  PostgreSQL NOTICE in the server) and is stored with the new version (sqlml.version_statistics
  .warnings, shown by ML.VERSIONS as ``data_warnings``);
- ``'error'``: any finding refuses the CREATE MODEL with 22000 (errors.DataValidationFailed)
  before training: nothing is stored and the serving version keeps serving;
- ``'off'``: no comparison (the statistics are stored all the same).

Findings: a column added, removed or of another type than the serving version's training rows
had; a column's NULL share moved by more than the threshold; a column's distribution (and the
label's: "label shift") beyond it, by the measures ML.VALIDATE_DATA_SKEW uses (L-infinity for
categorical columns, Jensen-Shannon divergence for numerical ones). The threshold is 0.3, as
BigQuery's default, for all of them.

Why before training: the check needs only the rows and the stored statistics, so a refused
version costs one read of the rows, not a training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from sqlml import errors
from sqlml.functions import monitoring
from sqlml.ml import statistics as st
from sqlml.ml.spec import OptionValue
from sqlml.ml.split import label_column

if TYPE_CHECKING:
    from sqlml.engine import Session
    from sqlml.grammar.statements import ModelRef

OPTION = "validate_data"
WARN, ERROR, OFF = "warn", "error", "off"
THRESHOLD = st.DEFAULT_THRESHOLD


def split(options: Mapping[str, OptionValue]) -> tuple[str, dict[str, OptionValue]]:
    """(the validate_data mode, the other options); 22023 for a bad value."""
    rest = {k: v for k, v in options.items() if k != OPTION}
    mode = options.get(OPTION, WARN)
    if not isinstance(mode, str) or mode.lower() not in (WARN, ERROR, OFF):
        raise errors.InvalidParameterValue(
            f"invalid value {mode!r} for option VALIDATE_DATA: expected one of warn, error, off"
        )
    return mode.lower(), rest


def describe(table: pa.Table, label: str | None) -> dict[str, Any]:
    """The statistics stored with a version: every column of the training rows."""
    return {"columns": st.describe(table), "label": label, "num_rows": table.num_rows}


def label_of(options: Mapping[str, OptionValue], table: pa.Table) -> str | None:
    """The label column as training will find it (INPUT_LABEL_COLS, else ``label``)."""
    return label_column(options, table)


def check(session: Session, ref: ModelRef, table: pa.Table, mode: str) -> list[dict[str, Any]]:
    """The findings against the serving version's statistics (none when nothing serves or it
    stored none), said as NOTICEs; 22000 with ``mode`` 'error'."""
    if mode == OFF or not table.num_rows:
        return []
    found = session.store.serving_statistics(ref.model)
    if found is None:
        return []
    serving, stored = found
    if stored is None:
        return []
    findings = compare(stored, table)
    if not findings:
        return []
    summary = "; ".join(f["message"] for f in findings)
    where = f"{ref.model} version {serving}"
    if mode == ERROR:
        raise errors.DataValidationFailed(
            f"the training rows differ from those of {where} (validate_data = 'error'): {summary}",
            hint="check the data, or train with validate_data = 'warn' or 'off'",
        )
    for finding in findings:
        session.say(f"validate_data: {finding['message']} (against {where})")
    return findings


def compare(stored: Mapping[str, Any], table: pa.Table) -> list[dict[str, Any]]:
    """What differs between the stored statistics and ``table``'s rows."""
    old: Mapping[str, st.Stats] = stored["columns"]
    label = stored.get("label")
    by_lower = {n.lower(): n for n in table.column_names}
    findings: list[dict[str, Any]] = []
    for name in sorted(old):
        if name.lower() not in by_lower:
            findings.append(_finding(name, "removed", f"column {name} is gone"))
    old_lower = {n.lower() for n in old}
    for name in table.column_names:
        if name.lower() not in old_lower:
            findings.append(_finding(name, "added", f"column {name} is new"))
    for name in sorted(old):
        if name.lower() in by_lower:
            findings += _column(name, old[name], table.column(by_lower[name.lower()]), label)
    return findings


def _column(
    name: str, base: st.Stats, values: pa.ChunkedArray, label: str | None
) -> list[dict[str, Any]]:
    kind = st.kind_of(values.type)
    if kind != base["type"] or (kind == st.OTHER and str(values.type) != base["sql_type"]):
        message = f"column {name} was {base['sql_type']}, is {values.type}"
        return [_finding(name, "retyped", message)]
    found: list[dict[str, Any]] = []
    rows = len(values)
    share = values.null_count / rows if rows else 0.0
    before = st.null_share(base)
    if abs(share - before) > THRESHOLD:
        message = f"column {name}'s NULL share moved from {before:.3f} to {share:.3f}"
        found.append(_finding(name, "null_share", message, abs(share - before)))
    if kind != st.OTHER:
        metric, value = monitoring.distance(base, values)
        if value > THRESHOLD:
            what = "label shift" if name == label else "distribution shift"
            message = f"{what} in column {name}: {metric} {value:.3f} > {THRESHOLD}"
            found.append(_finding(name, what.replace(" ", "_"), message, value, metric))
    return found


def _finding(
    name: str, kind: str, message: str, value: float | None = None, metric: str | None = None
) -> dict[str, Any]:
    finding: dict[str, Any] = {"input": name, "kind": kind, "message": message}
    if value is not None:
        finding.update(value=value, threshold=THRESHOLD, metric=metric)
    return finding
