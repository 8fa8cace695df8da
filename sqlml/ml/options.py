"""OPTIONS validation: BigQuery ML's option names, types, allowed values and defaults.

Each model type declares the options it accepts as :class:`Option` entries. ``resolve`` checks the
user's OPTIONS against them (unknown name, wrong type, value out of range or not among the choices:
22023) and returns every option with its default filled in, so the stored model records exactly what
it was trained with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlml import errors
from sqlml.grammar.statements import OptionValue


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # 'str' | 'int' | 'float' | 'bool' | 'str_list' | 'struct_list'
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
    "struct_list": _as_struct_list,
}


def positive(x: float) -> bool:
    return x > 0


def non_negative(x: float) -> bool:
    return x >= 0


def fraction(x: float) -> bool:
    return 0 < x < 1


def resolve(
    given: Mapping[str, OptionValue], accepted: Iterable[Option], model_type: str
) -> dict[str, Any]:
    """Every accepted option with the user's value (converted) or its default."""
    table = {option.name: option for option in accepted}
    for name in given:
        if name not in table:
            raise errors.InvalidParameterValue(
                f"option {name.upper()} is not supported for model_type {model_type.upper()}",
                hint="supported options: " + ", ".join(sorted(n.upper() for n in table)),
            )
    resolved: dict[str, Any] = {}
    for name, option in table.items():
        value = given.get(name)
        resolved[name] = option.default if value is None else _convert(option, value)
    return resolved


# Options every model type shares (BigQuery's CREATE MODEL common options).
COMMON = (
    Option("model_type", "str"),
    Option("max_iterations", "int", 20, check=positive, requirement="a positive integer"),
    Option("early_stop", "bool", True),
    Option("min_rel_progress", "float", 0.01, check=non_negative, requirement=">= 0"),
)
