"""BigQuery's backtick paths in ML statements: `` `dataset.table` `` is two names, not one.

BigQuery quotes a whole path in one pair of backticks (`` `project.dataset.table` ``); DuckDB and
PostgreSQL would read it as one name holding dots. Inside ML statements sqlml splits such a path
into its parts, each quoted (kept as written, as every quoted name is):

- in parse trees (the query around ML calls, ``TABLE`` arguments, model names), by
  :func:`split_table` on the Table nodes the parser builds;
- in the query texts kept as written (``CREATE MODEL ... AS query``, ``ML.PREDICT``'s
  ``(query)``), by :func:`unbacktick`, which rewrites every backticked name token of the one
  lexer as double-quoted parts (DuckDB and PostgreSQL read double quotes only).

A three-part path names a catalog: :func:`catalogs` finds the ones a tree names, and
:func:`check_catalogs` refuses (3D000) one the engine does not have.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlglot import exp

from sqlml import errors
from sqlml.grammar import lexer


def unbacktick(text: str) -> str:
    """``text`` with each `` `a.b.c` `` name written ``"a"."b"."c"`` (and `` `a` `` as
    ``"a"``); anything else, strings and comments included, as it was."""
    if "`" not in text:
        return text
    names = [
        t for t in lexer.units(text) if t.kind == lexer.NAME and text[t.start] == "`" and t.closed
    ]
    return lexer.replace(text, ((t, _double_quoted(t.text(text)[1:-1])) for t in names))


def _double_quoted(path: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in path.split("."))


def split_parts(parts: Iterable[exp.Identifier], backticked: set[int]) -> list[exp.Identifier]:
    """The parts of a dotted name, each backticked one (by ``id``) that holds dots split."""
    found: list[exp.Identifier] = []
    for part in parts:
        if id(part) not in backticked or "." not in part.name:
            found.append(part)
            continue
        for piece in part.name.split("."):
            found.append(exp.to_identifier(piece, quoted=True).update_positions(part))
    return found


def split_table(table: exp.Table, sql: str) -> exp.Table:
    """``table`` with each part written in backticks split at its dots (at most three parts:
    more is a 42601 with the path as written)."""
    parts = [p for p in table.parts if isinstance(p, exp.Identifier)]
    if len(parts) != len(table.parts):
        return table
    ticked = {id(p) for p in parts if _backticked(p, sql)}
    if not any(id(p) in ticked and "." in p.name for p in parts):
        return table
    split = split_parts(parts, ticked)
    if len(split) > 3:
        written = ".".join(p.name for p in split)
        raise errors.SyntaxError(
            f"too many name parts in {written}: expected at most project.dataset.table",
            position=_start(parts[0]),
        )
    names: list[exp.Identifier | None] = [*([None] * (3 - len(split))), *split]
    keep = {k: v for k, v in table.args.items() if k not in ("this", "db", "catalog")}
    return exp.Table(catalog=names[0], db=names[1], this=names[2], **keep)


def _backticked(ident: exp.Identifier, sql: str) -> bool:
    start = ident.meta.get("start")
    return bool(ident.quoted) and start is not None and sql[int(start) : int(start) + 1] == "`"


def _start(ident: exp.Identifier) -> int | None:
    start = ident.meta.get("start")
    return int(start) + 1 if start is not None else None


def catalogs(tree: exp.Expr) -> dict[str, exp.Table]:
    """The catalogs (projects) the tables of ``tree`` name, each with a table naming it."""
    found: dict[str, exp.Table] = {}
    for table in tree.find_all(exp.Table):
        catalog = table.args.get("catalog")
        if isinstance(catalog, exp.Identifier) and table.this:
            found.setdefault(_folded(catalog), table)
    return found


def check_catalogs(named: dict[str, exp.Table], known: Collection[str]) -> None:
    """3D000 for a catalog that is not the current database nor an attached one."""
    lowered = {k.lower(): k for k in known}
    for name, table in named.items():
        if name in known or name.lower() in lowered:
            continue
        path = ".".join(p.name for p in table.parts)
        raise errors.from_sqlstate(
            "3D000",
            f'project (catalog) "{name}" of {path} does not exist: a three-part name'
            f" names the current database or an attached catalog ({', '.join(sorted(known))})",
        )


def _folded(ident: exp.Identifier) -> str:
    return str(ident.this) if ident.quoted else ident.name.lower()
