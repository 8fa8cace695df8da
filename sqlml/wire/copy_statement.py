"""COPY statements between a client and a table or query: ``COPY ... FROM STDIN`` and
``COPY ... TO STDOUT``, read into a :class:`CopyStatement` for the wire session.

Theory of operation. The statement is read from sqlglot's PostgreSQL tokens, not parsed as a
tree: a ``COPY (query)`` holds any query, ML calls included, which the session runs as its own
text (the tokens' offsets cut it out of the statement), and the options come in two grammars,
PostgreSQL's ``WITH (FORMAT csv, HEADER)`` and the older ``WITH CSV HEADER DELIMITER ';'`` that
psql's ``\\copy`` users still write. Names are folded as PostgreSQL folds them (unquoted to
lower case) and kept as quoted sqlglot identifiers, so SQL built from them is exact. COPY to or
from a file or a program on the server is refused, as PostgreSQL refuses it to a role that is
not a superuser: ``\\copy`` does the same through STDIN and STDOUT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token, TokenType

from sqlml import errors
from sqlml.wire.copy import validate_options

__all__ = ["CopyStatement", "parse_copy"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*\Z")
_STRINGS = {TokenType.STRING, TokenType.BYTE_STRING, TokenType.NATIONAL_STRING}
_STRINGS |= {TokenType.HEREDOC_STRING, TokenType.RAW_STRING}
# options with a value in both grammars; FORMAT and FREEZE are read on their own
_VALUED = ("delimiter", "null", "quote", "escape", "encoding")
_QUOTED = {*_STRINGS, TokenType.IDENTIFIER}
_UTF8 = {"utf8", "utf-8", "unicode"}


@dataclass(frozen=True)
class CopyStatement:
    """``COPY table [(columns)] FROM STDIN``, ``COPY table [(columns)] TO STDOUT`` or
    ``COPY (query) TO STDOUT``, with its options."""

    table: exp.Table | None  # the table, names quoted as written or folded (None: a query)
    columns: tuple[str, ...]  # the column list, folded (empty: every column)
    query: str | None  # COPY (query) TO STDOUT: the query as written
    to_client: bool  # TO STDOUT (True) or FROM STDIN (False)
    format: str  # 'text' | 'csv' | 'binary'
    options: dict[str, str] = field(default_factory=dict)  # delimiter, null, header, quote, escape

    def select(self) -> str:
        """What COPY TO STDOUT sends, as a PostgreSQL query: the query, or the table's columns."""
        if self.query is not None:
            return self.query
        assert self.table is not None
        columns: list[exp.Expr] = [exp.column(c, quoted=True) for c in self.columns]
        select = exp.select(*(columns or [exp.Star()])).from_(self.table.copy())
        return select.sql(dialect="postgres")


def parse_copy(sql: str) -> CopyStatement | None:
    """The COPY statement in ``sql``; None if ``sql`` is no COPY. Raises 42601 for a syntax
    error, 0A000 for what is not supported (WHERE, FORCE_*), 42501 for a file or program."""
    try:
        tokens = _Tokens(sql)
    except TokenError as e:
        raise errors.SyntaxError(f"syntax error in COPY: {e}") from e
    if tokens.word() != "COPY":
        return None
    tokens.take()
    return _Parser(tokens, sql).statement()


class _Tokens:
    """A cursor over a statement's tokens."""

    def __init__(self, sql: str) -> None:
        self.tokens = Postgres().tokenize(sql)
        self.at = 0

    def peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise errors.SyntaxError("syntax error at end of input")
        self.at += 1
        return token

    def word(self) -> str | None:
        """The next token as an upper-case keyword or name, if it is one (not quoted)."""
        token = self.peek()
        if (
            token is None
            or token.token_type in _STRINGS
            or token.token_type == TokenType.IDENTIFIER
        ):
            return None
        return token.text.upper() if _WORD.match(token.text) else None

    def accept(self, *words: str) -> str | None:
        word = self.word()
        if word is not None and word in words:
            self.at += 1
            return word
        return None

    def is_a(self, token_type: TokenType) -> bool:
        token = self.peek()
        return token is not None and token.token_type == token_type

    def expect(self, token_type: TokenType) -> Token:
        if not self.is_a(token_type):
            raise self.unexpected()
        return self.take()

    def unexpected(self) -> errors.Error:
        token = self.peek()
        if token is None:
            return errors.SyntaxError("syntax error at end of input")
        return errors.SyntaxError(
            f'syntax error at or near "{token.text}"', position=token.start + 1
        )


class _Parser:
    def __init__(self, tokens: _Tokens, sql: str) -> None:
        self.tokens = tokens
        self.sql = sql
        self.format = "text"
        self.options: dict[str, str] = {}

    def statement(self) -> CopyStatement:
        tokens = self.tokens
        if tokens.accept("BINARY"):  # COPY BINARY table, the oldest grammar
            self.format = "binary"
        table, query = None, None
        columns: tuple[str, ...] = ()
        if tokens.is_a(TokenType.L_PAREN):
            query = self._parenthesized()
        else:
            table = self._table()
            columns = self._names() if tokens.is_a(TokenType.L_PAREN) else ()
        if query is not None and tokens.word() == "FROM":
            raise tokens.unexpected()  # a query is copied TO, never FROM
        direction = tokens.accept("FROM", "TO")
        if direction is None:
            raise tokens.unexpected()
        self._endpoint()
        self._options()
        if tokens.accept("WHERE"):
            raise errors.FeatureNotSupported("COPY FROM ... WHERE is not supported")
        while tokens.is_a(TokenType.SEMICOLON):
            tokens.take()
        if tokens.peek() is not None:
            raise tokens.unexpected()
        to_client = direction == "TO"
        validate_options(self.format, self.options, to_client)
        return CopyStatement(table, columns, query, to_client, self.format, self.options)

    # -- what is copied ------------------------------------------------------------------

    def _parenthesized(self) -> str:
        """The text between a parenthesis and its match (a query), as written."""
        tokens = self.tokens
        opening, depth = tokens.take(), 1
        while depth:
            token = tokens.take()
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
        inner = self.sql[opening.end + 1 : token.start].strip()
        if not inner:
            raise errors.SyntaxError('syntax error at or near ")"', position=token.start + 1)
        return inner

    def _name(self) -> str:
        token = self.tokens.peek()
        if token is not None and token.token_type == TokenType.IDENTIFIER:
            return self.tokens.take().text  # quoted: as written
        if self.tokens.word() is None:
            raise self.tokens.unexpected()
        return self.tokens.take().text.lower()  # PostgreSQL folds unquoted names

    def _table(self) -> exp.Table:
        parts = [self._name()]
        while self.tokens.is_a(TokenType.DOT) and len(parts) < 3:
            self.tokens.take()
            parts.append(self._name())
        names = [exp.to_identifier(p, quoted=True) for p in reversed(parts)]
        return exp.Table(this=names[0], db=_at(names, 1), catalog=_at(names, 2))

    def _names(self) -> tuple[str, ...]:
        self.tokens.expect(TokenType.L_PAREN)
        names = [self._name()]
        while self.tokens.is_a(TokenType.COMMA):
            self.tokens.take()
            names.append(self._name())
        self.tokens.expect(TokenType.R_PAREN)
        return tuple(names)

    def _endpoint(self) -> None:
        token = self.tokens.peek()
        if self.tokens.accept("STDIN", "STDOUT"):
            return
        if token is not None and (token.token_type in _STRINGS or self.tokens.word() == "PROGRAM"):
            raise errors.from_sqlstate(
                "42501",
                "COPY to or from a file or program on the server is not allowed through the"
                " gateway",
                hint="Use COPY ... TO STDOUT or FROM STDIN (psql's \\copy does so).",
            )
        raise self.tokens.unexpected()

    # -- options -------------------------------------------------------------------------

    def _options(self) -> None:
        tokens = self.tokens
        tokens.accept("WITH")
        if tokens.is_a(TokenType.L_PAREN):
            tokens.take()
            self._option()
            while tokens.is_a(TokenType.COMMA):
                tokens.take()
                self._option()
            tokens.expect(TokenType.R_PAREN)
            return
        while self._legacy_option():
            pass

    def _option(self) -> None:
        """One ``name [value]`` of the parenthesized option list."""
        if self.tokens.word() is None:
            raise self.tokens.unexpected()
        name = self.tokens.take().text.lower()
        value = self._value()
        if name == "format":
            if value is None:
                raise self.tokens.unexpected()
            self.format = value.lower()
        elif name in ("force_quote", "force_not_null", "force_null", "default"):
            raise errors.FeatureNotSupported(f"COPY option {name.upper()} is not supported")
        elif name == "freeze":
            pass  # a hint that rows may be written frozen: nothing to do here
        else:
            self._set(name, value if value is not None else "true")

    def _value(self) -> str | None:
        """An option's value: a string, a number or a word; None when there is none."""
        token = self.tokens.peek()
        if token is None or token.token_type in (TokenType.COMMA, TokenType.R_PAREN):
            return None
        if token.token_type in _STRINGS or token.token_type == TokenType.NUMBER:
            return self.tokens.take().text
        if token.token_type == TokenType.L_PAREN or token.token_type == TokenType.STAR:
            raise errors.FeatureNotSupported("COPY options with column lists are not supported")
        if self.tokens.word() is None:
            raise self.tokens.unexpected()
        return self.tokens.take().text.lower()

    def _legacy_option(self) -> bool:
        """One option of the grammar before PostgreSQL 9.0 (``CSV HEADER DELIMITER ';'``)."""
        valued = (name.upper() for name in _VALUED)
        word = self.tokens.accept("BINARY", "CSV", "HEADER", "FREEZE", "FORCE", "OIDS", *valued)
        if word is None:
            return False
        if word in ("BINARY", "CSV"):
            self.format = word.lower()
        elif word == "HEADER":
            self._set("header", "true")
        elif word in ("FORCE", "OIDS"):
            raise errors.FeatureNotSupported(f"COPY option {word} is not supported")
        elif word != "FREEZE":
            self.tokens.accept("AS")
            if not any(self.tokens.is_a(t) for t in _STRINGS):
                raise self.tokens.unexpected()
            self._set(word.lower(), self.tokens.take().text)
        return True

    def _set(self, name: str, value: str) -> None:
        if name in self.options:
            raise errors.SyntaxError("conflicting or redundant options")
        if name == "encoding":
            if value.lower().replace("_", "") not in _UTF8:
                raise errors.FeatureNotSupported(f'COPY encoding "{value}": only UTF8 is served')
            return
        self.options[name] = value


def _at(names: list[exp.Identifier], index: int) -> exp.Identifier | None:
    return names[index] if index < len(names) else None
