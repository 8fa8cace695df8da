"""Bring your own model: CREATE MODEL ... OPTIONS (model_type = 'onnx', model_path = '...') and
EXPORT MODEL ... OPTIONS (uri = '...'), the statements' file side (the graph check and the kind
are the ML core's: ml/imported.py).

Files are the files of the process the session runs in, and only where that process's files are
the user's:
- sqlml.connect over DuckDB (in-process): the client's own files, as DuckDB's own file
  functions read them;
- the gateway (``sqlml serve``) over DuckDB: the server's files, so the gateway's file-access
  policy decides (docs/gateway.md, Security): allowed with ``--allow-file-access`` or to a user
  with ``files=allow``; for everyone else (the default) 42501, as COPY to or from a server file
  is. The check reads the same switches as DuckDB's own file functions: the instance's
  ``enable_external_access`` and the session's per-user guard (wire/file_policy.py);
- PostgreSQL: the file is read where sqlml runs, never by the database server: sqlml.connect
  reads the client's own file; the gateway's PostgreSQL proxy reads the gateway host's file only
  when its operator allowed files (``--allow-file-access``), else 42501. Its bytes go to the
  extension's ``sqlml.import_model(statement, graph)`` as a bytea parameter; the server checks
  the graph and stores it like a trained version, in one transaction, with the rights of the
  client's own role (CREATE on the schema, or MANAGE on the model it replaces). Inside the
  server (``sqlml.execute``) reading model_path would read the server's files as the server's
  OS user, which PostgreSQL allows only to superusers and ``pg_read_server_files`` members:
  sqlml does not open that door, 42501. EXPORT MODEL reads the graph over the connection (the
  role's USAGE) and writes the file where sqlml runs, under the same policy. (Engines whose
  files are a server's say so: ``server_files = True``; ``file_access = True`` when the
  operator allowed them.)

A path is ``file:///absolute/path`` or a plain path; other schemes (``gs://``) are 0A000.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from sqlml import errors, lifecycle, views
from sqlml.engines.base import Engine, InServer, Result, all_or_nothing
from sqlml.grammar.statements import CreateModel, ExportModel
from sqlml.ml import imported, models
from sqlml.store import ModelVersion

if TYPE_CHECKING:
    from sqlml.engine import Session

GRAPH_FILE = "model.onnx"
SCHEMA_FILE = "schema.json"
_TYPES = {
    "numeric": "FLOAT64",
    "string": "STRING",
    "bool": "BOOL",
    "date": "DATE",
    "datetime": "DATETIME",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
}


def local_path(value: object, option: str) -> Path:
    """``file:///...`` or a plain path as a local path (0A000 for another scheme)."""
    if not isinstance(value, str) or not value.strip():
        raise errors.InvalidParameterValue(f"option {option.upper()} is required (a file path)")
    parsed = urlparse(value)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise errors.FeatureNotSupported(f"{option}: file URIs name no host here ({value})")
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # (a Windows drive letter is no scheme)
        raise errors.FeatureNotSupported(
            f"{option}: {parsed.scheme}:// paths are not supported", hint="use file:///path"
        )
    return Path(value)


def check_file_access(engine: Engine, doing: str) -> None:
    """42501 unless the session may use the files of the process it runs in (module docstring)."""
    if getattr(engine, "server_files", False):
        if getattr(engine, "file_access", False):
            return  # the gateway's proxy, whose operator allowed files
        raise errors.InsufficientPrivilege(
            f"{doing} would use a server's files (the database server's, or the gateway"
            " host's), which this session may not",
            hint="import with sqlml.connect (it reads the client's file) or"
            " SELECT sqlml.import_model(statement, graph) with the file's bytes; the gateway's"
            " operator allows files with --allow-file-access",
        )
    if engine.dialect != "duckdb":
        return  # sqlml.connect over PostgreSQL: the client's own files
    refused = getattr(engine, "guard", None) is not None or not _external_access(engine)
    if refused:
        raise errors.InsufficientPrivilege(
            f"{doing}: this session may not use the server's files",
            hint="the gateway's operator allows files with --allow-file-access or files=allow"
            " in the users file",
        )


def _external_access(engine: Engine) -> bool:
    table = engine.query_arrow("SELECT current_setting('enable_external_access')")
    return bool(table.column(0)[0].as_py())


# -- CREATE MODEL ... model_type = 'onnx' ---------------------------------------------------------


def create_model(
    session: Session, statement: CreateModel, graph: bytes | None = None
) -> int | None:
    """Checks the graph, then stores it as a new version (the previous one serves until then);
    the version's number (None: IF NOT EXISTS found the model). ``graph``: the file's bytes,
    read by the client (PostgreSQL's sqlml.import_model); None: read model_path here."""
    options, serves = _options(statement)
    if graph is None:
        path = local_path(options.get("model_path"), "model_path")
        check_file_access(session.engine, "reading model_path")
        return _store(session, statement, options, lambda: _read(path), serves)
    return _store(session, statement, options, lambda: graph, serves)


def _options(statement: CreateModel) -> tuple[dict[str, Any], bool]:
    """The import's options (22023 for a bad one), and whether its version serves: CREATE
    MODEL's deploy option, 'always' (the default) or 'manual'. 'if_better' compares metrics
    measured on the new version's evaluation rows, which an import has not (0A000)."""
    mode = statement.options.get("deploy")
    if isinstance(mode, str) and mode.upper() == lifecycle.IF_BETTER:
        raise errors.FeatureNotSupported(
            "deploy = 'if_better' compares metrics measured at training, which an imported"
            " model has not: import it with deploy = 'manual', compare (ML.COMPARE, ML.EVALUATE"
            " of MODEL m VERSION n) and DEPLOY it"
        )
    policy, rest = lifecycle.deploy_policy(statement.options)
    options = models.get(imported.MODEL_TYPE).resolve_options(rest)
    return {**options, **policy.given}, policy.mode != lifecycle.MANUAL


def _store(
    session: Session,
    statement: CreateModel,
    options: dict[str, Any],
    read: Callable[[], bytes],
    serves: bool,
) -> int | None:
    exists = session.store.current_version(statement.model) is not None
    if exists and statement.if_not_exists:
        return None
    if exists and not statement.replace:
        raise errors.DuplicateModel(f'model "{statement.model}" already exists')
    data = read()
    checked = imported.check_graph(data, statement.input_columns, statement.output_columns)
    result = _result(checked, options, data)
    with all_or_nothing(session.engine):
        version = session.store.save(
            statement.model,
            result,
            query_sql=None,
            transform_sql=None,
            replace=statement.replace or statement.if_not_exists,
            deploy=serves,
        )
        if not serves and session.store.current_version(statement.model) != version:
            session.say(
                f"{statement.model} version {version} is stored and does not serve"
                f" (deploy = 'manual'); ALTER MODEL {statement.model} DEPLOY VERSION {version}"
                " deploys it"
            )
        if session.engine.dialect == "duckdb":
            views.refresh_macro(session.engine, session.store.load(statement.model))
    return version


def import_in_server(
    session: Session, server: InServer, statement: CreateModel, sql: str
) -> Result:
    """PostgreSQL from the client side (sqlml.connect, the gateway's proxy): the file read here,
    under the file policy, and its bytes sent as a bytea parameter with the statement's text to
    ``sqlml.import_model``, which checks and stores the graph in the server as the client's
    role. Options are checked first, so a bad one fails before any file is read."""
    options, _ = _options(statement)
    path = local_path(options.get("model_path"), "model_path")
    check_file_access(session.engine, "reading model_path")
    return server.import_in_server(sql, _read(path))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise errors.from_sqlstate("58P01", f'model_path: file "{path}" does not exist') from e
    except IsADirectoryError as e:
        raise errors.InvalidParameterValue(f'model_path: "{path}" is a folder') from e
    except OSError as e:
        raise errors.IOError(f'model_path: cannot read "{path}": {e.strerror}') from e


def _result(graph: imported.Imported, options: dict[str, Any], data: bytes) -> Any:
    from sqlml.ml.train import TrainResult  # (its module loads scikit-learn: only here)

    return TrainResult(
        onnx=graph.onnx,
        model_type=imported.MODEL_TYPE,
        kind=imported.KIND,
        inputs=graph.inputs,
        label=None,
        label_type=None,
        classes=None,
        options=options,
        metrics={},
        training_info={"outputs": graph.outputs, "imported_sha256": _sha(data)},
        feature_info=[],
        row_count=0,
        data_hash=_sha(data),
    )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- EXPORT MODEL ---------------------------------------------------------------------------------


def export_model(session: Session, statement: ExportModel) -> None:
    """Writes the serving version's graph (``model.onnx``) and its column schema
    (``schema.json``) into the folder ``uri`` (created when missing), as BigQuery writes an
    export into a folder."""
    unknown = sorted(set(statement.options) - {"uri"})
    if unknown:
        raise errors.InvalidParameterValue(f"EXPORT MODEL takes option URI only, not {unknown[0]}")
    folder = local_path(statement.options.get("uri"), "uri")
    check_file_access(session.engine, "EXPORT MODEL")
    version = session.store.load(statement.model)
    schema = json.dumps(schema_of(version), indent=2) + "\n"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / GRAPH_FILE, version.onnx)
        _write(folder / SCHEMA_FILE, schema.encode())
    except OSError as e:
        raise errors.IOError(f'EXPORT MODEL: cannot write to "{folder}": {e.strerror}') from e


def _write(path: Path, data: bytes) -> None:
    """Written to a temporary name, then renamed: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def schema_of(version: ModelVersion) -> dict[str, Any]:
    """The column schema written beside an exported graph: its inputs as BigQuery types, and
    (for an imported model) its outputs."""
    outputs = version.training_info.get("outputs") if version.kind == imported.KIND else None
    return {
        "model": str(version.ref),
        "version": version.version,
        "model_type": version.model_type,
        "onnx_sha256": version.sha256,
        "inputs": [{"name": c.name, "type": _TYPES.get(c.kind, c.kind)} for c in version.inputs],
        "outputs": [
            {
                "name": o["name"],
                "type": ("ARRAY<{}>" if o["array"] else "{}").format(
                    "INT64" if o["type"] == "int" else "FLOAT64"
                ),
            }
            for o in outputs or []
        ],
        "label": version.label,
    }
