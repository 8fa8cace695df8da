"""OPTIONS validation: BigQuery ML's option names, types, allowed values and defaults.

Each model type declares the options it accepts as :class:`Option` entries. ``resolve`` checks the
user's OPTIONS against them and returns every option with its default filled in, so the stored
model records exactly what it was trained with.

A name the model type does not take is one of two mistakes, told apart: an option BigQuery ML has
for this model type that sqlml does not implement yet (the model type's ``pending`` names, from
BigQuery's CREATE MODEL reference) is 0A000 "not supported yet"; anything else (a typo, or an option
of another model type) is 22023 with the closest valid name as the hint. A wrong type, a value out
of range or not among the choices is 22023 too.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlml import errors
from sqlml.ml.spec import OptionValue


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # 'str' | 'int' | 'float' | 'bool' | 'str_list' | 'int_list' | 'struct_list'
    default: Any = None
    choices: tuple[str, ...] = ()  # for 'str': allowed values, compared case-insensitively
    check: Callable[[Any], bool] | None = None  # range check on the converted value
    requirement: str = ""  # words for the error message when ``check`` fails


def _bad(name: str, value: OptionValue, want: str) -> errors.InvalidParameterValue:
    return errors.InvalidParameterValue(
        f"invalid value {value!r} for option {name.upper()}: expected {want}"
    )


def _convert(option: Option, value: OptionValue) -> Any:
    converter = _CONVERTERS[option.kind]
    converted = converter(option, value)
    if option.check is not None and converted is not None and not option.check(converted):
        raise _bad(option.name, value, option.requirement or "a valid value")
    return converted


def _as_str(option: Option, value: OptionValue) -> Any:
    if not isinstance(value, str):
        raise _bad(option.name, value, "a string")
    if option.choices:
        upper = value.upper()
        if upper not in option.choices:
            raise _bad(option.name, value, "one of " + ", ".join(option.choices))
        return upper
    return value


def _as_int(option: Option, value: OptionValue) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(option.name, value, "an integer")
    return value


def _as_float(option: Option, value: OptionValue) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(option.name, value, "a number")
    return float(value)


def _as_bool(option: Option, value: OptionValue) -> Any:
    if not isinstance(value, bool):
        raise _bad(option.name, value, "TRUE or FALSE")
    return value


def _as_str_list(option: Option, value: OptionValue) -> Any:
    items = value if isinstance(value, tuple) else (value,)
    if not items or not all(isinstance(item, str) for item in items):
        raise _bad(option.name, value, "an array of strings, e.g. ['label']")
    return list(items)


def _as_int_list(option: Option, value: OptionValue) -> Any:
    items = value if isinstance(value, tuple) else (value,)
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise _bad(option.name, value, "an array of integers, e.g. [64, 32]")
    return list(items)


def _as_struct_list(option: Option, value: OptionValue) -> Any:
    """``[STRUCT('label', 0.2), ...]`` -> list of [label, weight] pairs."""
    items = value if isinstance(value, tuple) else ()
    pairs = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise _bad(option.name, value, "an array of STRUCT(label, weight)")
        label, weight = item
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise _bad(option.name, value, "an array of STRUCT(label, weight)")
        pairs.append([label, float(weight)])
    if not pairs:
        raise _bad(option.name, value, "a non-empty array of STRUCT(label, weight)")
    return pairs


_CONVERTERS: dict[str, Callable[[Option, OptionValue], Any]] = {
    "str": _as_str,
    "int": _as_int,
    "float": _as_float,
    "bool": _as_bool,
    "str_list": _as_str_list,
    "int_list": _as_int_list,
    "struct_list": _as_struct_list,
}


def positive(x: float) -> bool:
    return x > 0


def non_negative(x: float) -> bool:
    return x >= 0


def fraction(x: float) -> bool:
    return 0 < x < 1


def resolve(
    given: Mapping[str, OptionValue],
    accepted: Iterable[Option],
    model_type: str,
    pending: Iterable[str] = (),
) -> dict[str, Any]:
    """Every accepted option with the user's value (converted) or its default."""
    table = {option.name: option for option in accepted}
    for name in given:
        if name not in table:
            raise unknown(name, table, tuple(pending), model_type)
    resolved: dict[str, Any] = {}
    for name, option in table.items():
        value = given.get(name)
        resolved[name] = option.default if value is None else _convert(option, value)
    return resolved


def unknown(
    name: str, accepted: Iterable[str], pending: tuple[str, ...], model_type: str
) -> errors.Error:
    """0A000 for an option BigQuery has and sqlml does not yet; 22023 with the closest name
    (difflib) for anything else."""
    if name in pending:
        return errors.FeatureNotSupported(
            f"option {name.upper()} is not supported yet (model_type {model_type.upper()})",
            hint="BigQuery ML has it; sqlml does not implement it yet: leave it out",
        )
    return errors.InvalidParameterValue(
        f"option {name.upper()} is not an option of model_type {model_type.upper()}",
        hint=closest(name, accepted, "options"),
    )


def closest(name: str, valid: Iterable[str], what: str) -> str:
    """ "did you mean X?" for the nearest valid name (difflib), else the list of them."""
    names = sorted(valid)
    match = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
    if match:
        return f"did you mean {match[0].upper()}?"
    return f"valid {what}: " + ", ".join(n.upper() for n in names)


# Options every model type shares (BigQuery's CREATE MODEL common options).
COMMON = (
    Option("model_type", "str"),
    Option("max_iterations", "int", 20, check=positive, requirement="a positive integer"),
    Option("early_stop", "bool", True),
    Option("min_rel_progress", "float", 0.01, check=non_negative, requirement=">= 0"),
    # incremental training (sqlml's own; ml/incremental.py): ALTER MODEL ... RETRAIN adds the
    # rows whose watermark_col is past the last training's
    Option("incremental", "bool", False),
    Option("watermark_col", "str"),
    # a training budget (sqlml's own; engine.py, "sampled"): train on at most this many rows
    Option("max_training_rows", "int", None, check=positive, requirement="a positive integer"),
    # and time: a training past it stops with 57014 (ml/checkpoints.py, budgeted)
    Option("max_training_seconds", "float", None, check=positive, requirement="a number > 0"),
    # and memory: past it, training learns from a stream of the rows, or from a sample of them
    # (ml/streamed.py; None: a quarter of the machine's memory)
    Option("max_training_memory_mb", "float", None, check=positive, requirement="a number > 0"),
)
