"""The one error vocabulary of sqlml.

Every error a user can cause is a class here with its SQLSTATE. The classes sit in the PEP 249
hierarchy, so ``except sqlml.ProgrammingError`` works as in any driver, and every instance carries
``.sqlstate`` (and optionally ``.detail``, ``.hint``, ``.position``) for the wire gateway and
PL/Python.
Tests assert the SQLSTATE, never the wording.
"""

from __future__ import annotations

from typing import ClassVar


class Warning(Exception):
    """PEP 249 Warning."""


class Error(Exception):
    """PEP 249 base class; every sqlml error has a SQLSTATE."""

    sqlstate: ClassVar[str] = "XX000"

    def __init__(
        self,
        message: str,
        *,
        detail: str | None = None,
        hint: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.hint = hint
        self.position = position  # 1-based character offset into the statement, as PostgreSQL does

    def __str__(self) -> str:
        text = self.message
        if self.detail:
            text += f"\nDETAIL: {self.detail}"
        if self.hint:
            text += f"\nHINT: {self.hint}"
        return text


class InterfaceError(Error):
    sqlstate = "08000"


class DatabaseError(Error):
    sqlstate = "XX000"


class DataError(DatabaseError):
    sqlstate = "22000"


class OperationalError(DatabaseError):
    sqlstate = "58000"


class IntegrityError(DatabaseError):
    sqlstate = "23000"


class InternalError(DatabaseError):
    """Our own bug: XX000 is used for nothing else."""

    sqlstate = "XX000"


class ProgrammingError(DatabaseError):
    sqlstate = "42000"


class NotSupportedError(DatabaseError):
    sqlstate = "0A000"


# -- concrete errors, one per SQLSTATE a user can cause ------------------------------------------


class SyntaxError(ProgrammingError):
    sqlstate = "42601"


class UndefinedTable(ProgrammingError):
    sqlstate = "42P01"


class UndefinedColumn(ProgrammingError):
    sqlstate = "42703"


class UndefinedObject(ProgrammingError):
    sqlstate = "42704"


class UndefinedModel(UndefinedObject):
    sqlstate = "42704"


class DuplicateObject(ProgrammingError):
    sqlstate = "42710"


class DuplicateModel(DuplicateObject):
    sqlstate = "42710"


class DatatypeMismatch(ProgrammingError):
    sqlstate = "42804"


class InvalidParameterValue(DataError):
    sqlstate = "22023"


class UnusableTrainingData(DataError):
    sqlstate = "22000"


class DataValidationFailed(DataError):
    """CREATE MODEL ... validate_data = 'error': the training rows differ from the serving
    version's beyond the thresholds (sqlml/validation.py)."""

    sqlstate = "22000"


class FeatureNotSupported(NotSupportedError):
    sqlstate = "0A000"


class QueryCanceled(OperationalError):
    sqlstate = "57014"


class ProtocolViolation(OperationalError):
    sqlstate = "08P01"


class InvalidPassword(OperationalError):
    sqlstate = "28P01"


class InsufficientPrivilege(ProgrammingError):
    sqlstate = "42501"


class InFailedTransaction(ProgrammingError):
    sqlstate = "25P02"


class CorruptedModel(InternalError):
    sqlstate = "XX001"


# -- what an engine reports (DuckDB's errors mapped to PostgreSQL's codes, engines/duckdb_errors.py)


class DuplicateTable(ProgrammingError):
    sqlstate = "42P07"


class DuplicateSchema(ProgrammingError):
    sqlstate = "42P06"


class DuplicateFunction(ProgrammingError):
    sqlstate = "42723"


class DuplicateColumn(ProgrammingError):
    sqlstate = "42701"


class UndefinedFunction(ProgrammingError):
    sqlstate = "42883"


class InvalidSchemaName(ProgrammingError):
    sqlstate = "3F000"


class GroupingError(ProgrammingError):
    sqlstate = "42803"


class DependentObjectsStillExist(ProgrammingError):
    sqlstate = "2BP01"


class InvalidTextRepresentation(DataError):
    sqlstate = "22P02"


class NumericValueOutOfRange(DataError):
    sqlstate = "22003"


class DivisionByZero(DataError):
    sqlstate = "22012"


class ActiveSqlTransaction(ProgrammingError):
    sqlstate = "25001"


class NoActiveSqlTransaction(ProgrammingError):
    sqlstate = "25P01"


class ObjectNotInPrerequisiteState(OperationalError):
    sqlstate = "55000"


class SerializationFailure(OperationalError):
    sqlstate = "40001"


class OutOfMemory(OperationalError):
    sqlstate = "53200"


class IOError(OperationalError):
    sqlstate = "58030"


def registry() -> dict[str, type[Error]]:
    """SQLSTATE -> the most specific sqlml class, for mapping errors that arrive from an engine."""
    found: dict[str, type[Error]] = {}
    stack: list[type[Error]] = [Error]
    while stack:
        cls = stack.pop()
        found[cls.sqlstate] = cls
        stack.extend(cls.__subclasses__())
    return found


# SQLSTATE class (first two characters) -> PEP 249 category, for codes sqlml has no class for.
_CATEGORIES: dict[str, type[Error]] = {
    "0A": NotSupportedError,
    "08": OperationalError,
    "22": DataError,
    "23": IntegrityError,
    "25": ProgrammingError,
    "2B": ProgrammingError,
    "28": OperationalError,
    "3D": ProgrammingError,
    "40": OperationalError,
    "42": ProgrammingError,
    "53": OperationalError,
    "54": OperationalError,
    "55": OperationalError,
    "57": OperationalError,
    "58": OperationalError,
    "XX": InternalError,
}


def from_sqlstate(
    sqlstate: str | None,
    message: str,
    *,
    detail: str | None = None,
    hint: str | None = None,
    position: int | None = None,
) -> Error:
    """An error that arrived from an engine with its SQLSTATE, which it keeps unchanged: the
    most specific sqlml class for the code, else the PEP 249 category of its SQLSTATE class."""
    code = sqlstate or "XX000"
    cls = registry().get(code) or _CATEGORIES.get(code[:2], DatabaseError)
    error = cls(message, detail=detail, hint=hint, position=position)
    object.__setattr__(error, "sqlstate", code)  # the instance keeps the server's exact code
    return error
