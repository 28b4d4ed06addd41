"""The ClickHouse HTTP interface served from one embedded chDB engine.

chDB is ClickHouse in-process, and only one process may open a data path. In citycam's
embedded default this process owns the chDB data and serves the ClickHouse HTTP protocol on
loopback, so every other process (sink, analysts, Superset) reaches the warehouse through a
URL with an unmodified ClickHouse client, exactly as it would a real server.

chDB has no users, grants or sandbox, so this module is the security boundary:

- it listens on loopback only, unless `allow_remote=True`;
- each request runs exactly ONE statement. chDB's own parser turns it into one canonical
  statement (`formatQuerySingleLine`, which refuses several statements) and a syntax tree
  (`EXPLAIN AST`); both are screened, and the canonical text is what runs, so what was
  checked is exactly what runs;
- analyst and opendata users run on `readonly=1` chDB handles and read only allowed tables.
"""

from __future__ import annotations

import argparse
import base64
import bz2
import email.parser
import email.policy
import hmac
import ipaddress
import itertools
import json
import logging
import lzma
import re
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.frame
import zstandard

log = logging.getLogger(__name__)

Role = Literal["writer", "analyst", "opendata"]
ROLES: tuple[Role, ...] = ("writer", "analyst", "opendata")
OPEN_DATA_DATABASE = "open_data"
DISPLAY_NAME = "citycam-warehouse"

READ_CHUNK = 1 << 16
DEFAULT_MAX_QUERY_SIZE = 262_144  # ClickHouse's default max_query_size
INSERT_HEAD_LIMIT = 1 << 20  # how far into a body the start of INSERT data is searched for
FORM_BODY_LIMIT = 64 << 20
DRAIN_LIMIT = 256 << 20  # unread request body discarded so an error can still be answered
DEFAULT_SESSION_TIMEOUT_S = 60
MAX_SESSION_TIMEOUT_S = 3600
MAX_SESSIONS = 256
SESSION_LOCK_WAIT_S = 10.0
SHUTDOWN_GRACE_S = 10.0

# ---------------------------------------------------------------------------------------------
# Errors


# ClickHouse's HTTP status per error code, minus 503/504/429: clients retry those.
_STATUS_BY_CODE: dict[int, int] = {
    **dict.fromkeys(
        (6, 8, 15, 25, 26, 27, 36, 38, 41, 44, 53, 62, 72, 117, 167, 168, 223, 321, 376, 427, 441),
        400,
    ),
    **dict.fromkeys((194, 516), 401),
    **dict.fromkeys((164, 192, 193, 497, 512), 403),
    **dict.fromkeys((46, 47, 50, 56, 60, 63, 73, 81, 115, 336, 372, 511), 404),
    159: 408,
    381: 411,
    48: 501,
}
_CODE_PREFIX = re.compile(r"Code: (\d+)\. DB::Exception: ")
_TRAILER = re.compile(r"(?:[\s.:]*\((?:[A-Z][A-Z0-9_]*|version [^)]*)\))+[\s.]*$")
_TRAILER_NAME = re.compile(r"\(([A-Z][A-Z0-9_]*)\)")
# Our parse step wraps the user's text; its echo is noise (and may be huge).
_PARSE_SCOPE = re.compile(r"[\s.:]*In scope SELECT formatQuerySingleLine\(.*$", re.DOTALL)


class WarehouseError(Exception):
    """An error in ClickHouse's shape: numeric code, symbolic name and message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @property
    def http_status(self) -> int:
        return _STATUS_BY_CODE.get(self.code, 500)

    def body(self, version: str) -> str:
        return (
            f"Code: {self.code}. DB::Exception: {self.message}. ({self.name}) (version {version})\n"
        )

    @classmethod
    def from_engine(cls, exc: BaseException) -> WarehouseError:
        """From chDB's `Code: 60. DB::Exception: ... (UNKNOWN_TABLE)` text, sometimes nested."""
        text = str(exc)
        prefixes = list(_CODE_PREFIX.finditer(text))
        if not prefixes:
            return cls(1002, "UNKNOWN_EXCEPTION", text.strip() or type(exc).__name__)
        innermost = prefixes[-1]
        rest = text[innermost.end() :]
        trailer = _TRAILER.search(rest)
        names = _TRAILER_NAME.findall(trailer.group(0)) if trailer else []
        message = _PARSE_SCOPE.sub("", rest[: trailer.start()] if trailer else rest).rstrip(" .")
        return cls(int(innermost.group(1)), names[-1] if names else "UNKNOWN_EXCEPTION", message)


def _access_denied(user: str, why: str) -> WarehouseError:
    return WarehouseError(497, "ACCESS_DENIED", f"{user}: Not enough privileges: {why}")


# ---------------------------------------------------------------------------------------------
# Lexer. Used on chDB's canonical text (no comments, standard quoting) for the few facts the
# syntax tree dump leaves out, and on the raw request text only to find where INSERT data
# starts; the statement before that point is still parsed and checked by chDB.


@dataclass(frozen=True)
class Token:
    kind: Literal["word", "quoted", "string", "number", "punct"]
    text: str
    start: int
    end: int
    depth: int  # bracket nesting outside this token

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words

    def is_punct(self, char: str) -> bool:
        return self.kind == "punct" and self.text == char

    @property
    def name(self) -> str:
        """The identifier this token names, without quotes."""
        if self.kind == "quoted":
            return self.text[1:-1]
        return self.text


_SPACE = " \t\n\r\f\v"
_HEREDOC = re.compile(r"\$([A-Za-z0-9_]*)\$")


def _is_word_start(char: str) -> bool:
    return (char.isascii() and (char.isalpha() or char == "_")) or char >= "\x80"


def _is_word_char(char: str) -> bool:
    return _is_word_start(char) or char.isdigit() or char == "$"


def _comment_end(text: str, i: int) -> int | None:
    """End of a comment starting at i; None if none starts there, -1 if it is unterminated."""
    if text.startswith("--", i) or (text.startswith("#", i) and text[i + 1 : i + 2] in (" ", "!")):
        newline = text.find("\n", i)
        return -1 if newline < 0 else newline + 1
    if not text.startswith("/*", i):
        return None
    level, j = 1, i + 2
    while level and j < len(text) - 1:
        pair = text[j : j + 2]
        level += 1 if pair == "/*" else -1 if pair == "*/" else 0
        j += 2 if pair in ("/*", "*/") else 1
    return j if level == 0 else -1


def _quoted_end(text: str, i: int) -> int:
    """End of a '...', "..." or `...` token at i (backslash escapes, doubled quotes); -1 if open."""
    quote, j = text[i], i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text[j] == quote:
            if text[j + 1 : j + 2] != quote:
                return j + 1
            j += 2
        else:
            j += 1
    return -1


def _number_end(text: str, i: int) -> int:
    j = i
    while j < len(text) and (
        text[j].isalnum() or text[j] in "._" or (text[j] in "+-" and text[j - 1] in "eE")
    ):
        j += 1
    return j


def tokenize(text: str) -> tuple[list[Token], bool]:
    """SQL tokens of `text`; the flag says it ended inside an unterminated literal or comment."""
    tokens: list[Token] = []
    depth, i = 0, 0
    while i < len(text):
        char = text[i]
        if char in _SPACE:
            i += 1
            continue
        comment = _comment_end(text, i)
        if comment is not None:
            if comment < 0:
                return tokens, True
            i = comment
            continue
        kind: Literal["word", "quoted", "string", "number", "punct"] = "punct"
        heredoc = _HEREDOC.match(text, i) if char == "$" else None
        if char in "'\"`":
            end = _quoted_end(text, i)
            kind = "string" if char == "'" else "quoted"
        elif heredoc:
            close = text.find(heredoc.group(0), heredoc.end())
            end = -1 if close < 0 else close + len(heredoc.group(0))
            kind = "string"
        elif _is_word_start(char):
            end = i + 1
            while end < len(text) and _is_word_char(text[end]):
                end += 1
            kind = "word"
        elif char.isdigit():
            end, kind = _number_end(text, i), "number"
        else:
            end = i + 1
            depth -= char in ")]}"
        if end < 0:
            return tokens, True
        tokens.append(Token(kind, text[i:end], i, end, depth))
        depth += kind == "punct" and char in "([{"
        i = end
    return tokens, False


# ---------------------------------------------------------------------------------------------
# Syntax tree: chDB's `EXPLAIN AST` dump, one node per line, indented by depth.


@dataclass
class AstNode:
    label: str
    declared_children: int
    children: list[AstNode] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.label.split(" ", 1)[0]

    @property
    def argument(self) -> str:
        """The name after the node kind, e.g. `file` in `Function file (alias f)`."""
        rest = self.label.split(" ", 1)[1].strip() if " " in self.label else ""
        return rest.split(" (alias ", 1)[0]

    def walk(self) -> Iterator[tuple[AstNode, AstNode | None]]:
        """Every node with its parent, depth first; no recursion (trees can be ~1000 deep)."""
        stack: list[tuple[AstNode, AstNode | None]] = [(self, None)]
        while stack:
            node, parent = stack.pop()
            yield node, parent
            stack.extend((child, node) for child in reversed(node.children))


_CHILDREN = re.compile(r" \(children (\d+)\)$")


def parse_ast(dump: str) -> AstNode:
    """Tree of an `EXPLAIN AST` dump; refuses dumps whose shape does not add up.

    Identifiers are dumped raw, so a name holding a newline could forge lines: the canonical
    text check refuses such names, and the child counts printed by chDB must match here.
    """
    root: AstNode | None = None
    stack: list[tuple[int, AstNode]] = []
    for line in dump.rstrip("\n").split("\n"):
        depth = len(line) - len(line.lstrip(" "))
        count = _CHILDREN.search(line)
        label = (line[: count.start()] if count else line).strip()
        node = AstNode(label, int(count.group(1)) if count else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack and depth == stack[-1][0] + 1:
            stack[-1][1].children.append(node)
        elif root is None and depth == 0:
            root = node
        else:
            raise ValueError("malformed syntax tree dump")
        stack.append((depth, node))
    if root is None or any(len(n.children) != n.declared_children for n, _ in root.walk()):
        raise ValueError("syntax tree dump does not add up")
    return root


# ---------------------------------------------------------------------------------------------
# One parsed statement.


@dataclass(frozen=True)
class Statement:
    """A statement as chDB's parser sees it: canonical single-line text, tokens and tree."""

    text: str
    tokens: tuple[Token, ...]
    ast: AstNode

    @property
    def kind(self) -> str:
        return self.ast.kind

    def format_clause(self) -> str | None:
        """The trailing `FORMAT x` (canonical text puts it last, or before SETTINGS)."""
        for i in range(len(self.tokens) - 2, -1, -1):
            token, after = self.tokens[i], self.tokens[i + 2 : i + 3]
            if (
                token.depth == 0
                and token.is_word("FORMAT")
                and self.tokens[i + 1].kind == "word"
                and (not after or after[0].is_word("SETTINGS"))
            ):
                return self.tokens[i + 1].text
        return None

    def insert_head(self) -> tuple[str, str] | None:
        """(`INSERT INTO t (cols)` without FORMAT, input format) for an INSERT taking data."""
        fmt = self.format_clause() if self.kind == "InsertQuery" else None
        if fmt is None:
            return None
        cut = max(t.start for t in self.tokens if t.depth == 0 and t.is_word("FORMAT"))
        return self.text[:cut].rstrip(), fmt

    def used_database(self) -> str | None:
        if self.kind == "UseQuery" and self.ast.children:
            return self.ast.children[0].argument
        return None


def _escape_param(value: str) -> str:
    """A value in the escaped text form chDB's `params=` reads (as ClickHouse HTTP does)."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


class StatementParser:
    """Runs chDB's own parser on a request's handle; caches results (clients repeat queries).

    Why the engine's parser and not regular expressions: ClickHouse SQL has nested comments,
    heredocs, several quoting styles, case-insensitive and quoted function names, table
    functions inside CTEs, subqueries, lambdas and view() - a pattern matcher that disagrees
    with the real parser once is a hole. `formatQuerySingleLine` parses exactly as execution
    will, refuses several statements, and returns one canonical text (comments gone, quoting
    uniform); `EXPLAIN AST` of that text gives the tree (functions, table identifiers, kinds).
    Neither executes anything. The canonical text is then what runs. The few facts the tree
    dump omits (SETTINGS names, INTO OUTFILE, ENGINE, dictionary source keys) are read from
    tokens of the canonical text, where no comment or odd quoting can hide them.
    """

    def __init__(self, capacity: int = 512, max_cached_text: int = 64 << 10) -> None:
        self._cache: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], Statement] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity
        self._max_cached_text = max_cached_text

    def parse(self, conn: Any, sql: str, params: Mapping[str, str]) -> Statement:
        key = (sql, tuple(sorted(params.items())))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        statement = self._parse(conn, sql, params)
        if len(sql) <= self._max_cached_text:
            with self._lock:
                self._cache[key] = statement
                while len(self._cache) > self._capacity:
                    self._cache.popitem(last=False)
        return statement

    @staticmethod
    def _parse(conn: Any, sql: str, params: Mapping[str, str]) -> Statement:
        # The user's text travels as a bound String, never spliced: formatting it cannot run
        # it, and ClickHouse's formatter refuses more than one statement.
        text = _run(
            conn, "SELECT formatQuerySingleLine({q:String})", "RawBLOB", {"q": _escape_param(sql)}
        )
        canonical = text.decode("utf-8", "replace").strip()
        tokens, _ = tokenize(canonical)
        _refuse_forging_identifiers(tokens, params)
        # Parameters are substituted in the dump, so `{t:Identifier}` shows the real table.
        dump = _run(conn, f"EXPLAIN AST {canonical}", "TabSeparatedRaw", dict(params))
        try:
            ast = parse_ast(dump.decode("utf-8", "replace"))
        except ValueError as exc:
            raise WarehouseError(497, "ACCESS_DENIED", f"statement refused: {exc}") from None
        return Statement(canonical, tuple(tokens), ast)


def _refuse_forging_identifiers(tokens: Sequence[Token], params: Mapping[str, str]) -> None:
    """Names print raw in the tree dump, so one holding a newline could forge tree lines:
    refuse quoted names with escapes, and `{x:Identifier}` values that are not plain names."""
    for token in tokens:
        if token.kind == "quoted" and "\\" in token.text:
            raise WarehouseError(
                36,
                "BAD_ARGUMENTS",
                f"identifiers with escape sequences are not served: {token.text}",
            )
    for name in _identifier_params(tokens):
        value = params.get(name)
        if value is not None and not _SIMPLE_NAME.match(value):
            raise WarehouseError(
                36, "BAD_ARGUMENTS", f"identifier parameter {name} must be a plain name"
            )


def _run(conn: Any, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> bytes:
    try:
        return bytes(conn.query(sql, fmt, params=dict(params or {})).bytes())
    except Exception as exc:
        raise WarehouseError.from_engine(exc) from None


# ---------------------------------------------------------------------------------------------
# Policy: what each role may run. Allow-lists wherever the engine lists its features, so a
# table function or engine added by a newer chDB is refused until someone looks at it.

_SAFE_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries", "primes"}
    | {"values", "sqlstandardvalues", "null", "view", "viewifpermitted", "viewexplain"}
    | {"generaterandom", "format", "input"}
)
# They read warehouse tables by name, system ones included: writers only.
_WRITER_TABLE_FUNCTIONS = frozenset({"merge", "loop", "dictionary"})
_WRITER_TABLE_FUNCTION_PREFIXES = ("mergetree", "timeseries")
# Ordinary functions that read the server's files (`file()` works even under readonly=1).
_FILE_FUNCTIONS = frozenset({"file", "catboostevaluate"})
# Read other databases' dictionaries / Join tables by name, or probe their schemas.
_OPENDATA_DENIED_FUNCTION_PREFIXES = ("dict", "joinget", "hascolumnintable")
_IN_FUNCTIONS = frozenset(
    {"in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin"}
    | {"globalnotnullin"}
)
_SAFE_ENGINES = frozenset(
    {"mergetree", "replacingmergetree", "summingmergetree", "aggregatingmergetree"}
    | {"collapsingmergetree", "versionedcollapsingmergetree", "graphitemergetree"}
    | {"coalescingmergetree", "log", "tinylog", "stripelog", "memory", "buffer", "null", "set"}
    | {"join", "view", "materializedview", "dictionary", "generaterandom", "merge", "alias"}
    | {"atomic", "ordinary", "lazy"}  # database engines
)
_DICTIONARY_SOURCES = frozenset({"clickhouse", "null"})
_DICTIONARY_SOURCE_KEYS = frozenset({"db", "table", "update_field", "update_lag"})
_SSD_LAYOUTS = frozenset({"ssd_cache", "complex_key_ssd_cache"})  # they take a file path
_HARMLESS_SYSTEM_TABLES = frozenset(
    {"settings", "functions", "formats", "data_type_families", "time_zones", "one"}
    | {"numbers", "numbers_mt", "zeros", "zeros_mt"}
)
_ANALYST_SYSTEM_TABLES = _HARMLESS_SYSTEM_TABLES | {"tables", "columns", "databases"}

_DENIED_SETTINGS = frozenset(
    {"readonly", "dialect", "compatibility", "profile", "additional_table_filters"}
    | {"additional_result_filter", "disk", "storage_policy", "table_disk", "output_format_schema"}
    | {"input_format_record_errors_file_path", "format_avro_schema_registry_url", "url_base"}
    | {"filesystem_cache_name", "input_format_values_interpret_expressions"}
    | {"input_format_values_deduce_templates_of_expressions"}
)
_DENIED_SETTING_PREFIXES = ("allow_", "format_schema", "format_template_", "dynamic_disk_")
_DENIED_SETTING_SUFFIXES = ("_dialect",)
# The Values input format evaluates SQL expressions inside the data (`VALUES (file('x'))`),
# which no parse of the statement sees: inline VALUES take literals only.
_LITERAL_VALUES_SETTINGS = {
    "input_format_values_interpret_expressions": "0",
    "input_format_values_deduce_templates_of_expressions": "0",
}

_SELECT_KINDS = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery"})
_READ_KINDS = _SELECT_KINDS | {"DescribeQuery", "Explain"}
_ANALYST_KINDS = _READ_KINDS | frozenset(
    {"ShowTables", "ShowColumns", "ShowIndexes", "ShowFunctions", "UseQuery", "Set"}
)
_ANALYST_KIND_PREFIXES = ("ShowCreate", "Exists")
_WRITER_KINDS = _ANALYST_KINDS | frozenset(
    {"InsertQuery", "CreateQuery", "AttachQuery", "DetachQuery", "DropQuery", "AlterQuery"}
    | {"DeleteQuery", "UpdateQuery", "Rename", "TruncateQuery", "OptimizeQuery", "UndropQuery"}
    | {"CheckQuery", "CreateSQLFunctionQuery", "DropFunctionQuery"}
)
_WRITER_KIND_PREFIXES = ("Show", "Exists")
_OPENDATA_KINDS = _READ_KINDS | {"Set"}
_RESULT_KIND_PREFIXES = ("Select", "Show", "Describe", "Exists", "Explain", "Check")


def setting_refusal(name: str) -> str | None:
    """Why a setting may not be changed on this server, or None when it may."""
    lowered = name.lower()
    if (
        lowered in _DENIED_SETTINGS
        or lowered.startswith(_DENIED_SETTING_PREFIXES)
        or lowered.endswith(_DENIED_SETTING_SUFFIXES)
    ):
        return f"setting {name} cannot be changed on this server"
    return None


def _kind_allowed(kind: str, names: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    return kind in names or kind.startswith(prefixes)


@dataclass(frozen=True)
class Policy:
    """What each role may run, given the engine's list of table functions."""

    table_functions: frozenset[str]
    denied_functions: frozenset[str]
    writer_functions: frozenset[str]

    @classmethod
    def from_table_functions(cls, names: Iterable[str]) -> Policy:
        known = frozenset(name.lower() for name in names)
        writer = frozenset(
            name
            for name in known
            if name in _WRITER_TABLE_FUNCTIONS or name.startswith(_WRITER_TABLE_FUNCTION_PREFIXES)
        )
        return cls(known, (known - _SAFE_TABLE_FUNCTIONS - writer) | _FILE_FUNCTIONS, writer)

    def check(self, statement: Statement, user: WarehouseUser, database: str, get: bool) -> None:
        """Raise ACCESS_DENIED (or READONLY for GET) unless `user` may run `statement`."""
        self._check_kind(statement, user, get)
        self._check_clauses(statement, user)
        self._check_functions(statement, user)
        if statement.kind in ("CreateQuery", "AttachQuery", "AlterQuery"):
            self._check_storage(statement, user)
        if user.role != "writer":
            self._check_tables(statement, user, database)

    @staticmethod
    def _check_kind(statement: Statement, user: WarehouseUser, get: bool) -> None:
        kind = statement.kind
        if get and not _kind_allowed(kind, _ANALYST_KINDS, _ANALYST_KIND_PREFIXES):
            raise WarehouseError(
                164,
                "READONLY",
                "Cannot execute query in readonly mode. For queries over HTTP, method GET "
                "implies readonly. You should use method POST for modifying queries",
            )
        allowed = {
            "writer": _kind_allowed(kind, _WRITER_KINDS, _WRITER_KIND_PREFIXES),
            "analyst": _kind_allowed(kind, _ANALYST_KINDS, _ANALYST_KIND_PREFIXES),
            "opendata": kind in _OPENDATA_KINDS,
        }[user.role]
        if not allowed:
            raise _access_denied(
                user.name, f"{kind} statements are not allowed for {user.role} users"
            )

    @staticmethod
    def _check_clauses(statement: Statement, user: WarehouseUser) -> None:
        tokens = statement.tokens
        for a, b in itertools.pairwise(tokens):
            if (a.is_word("INTO") and b.is_word("OUTFILE")) or (
                a.is_word("FROM") and b.is_word("INFILE")
            ):
                raise _access_denied(user.name, "INTO OUTFILE / FROM INFILE reach server files")
            if a.kind == "word" and a.text.lower() == "disk" and b.is_punct("("):
                raise _access_denied(user.name, "disks defined in a query reach server paths")
        for name in _setting_names(statement):
            refusal = setting_refusal(name)
            if refusal:
                raise _access_denied(user.name, refusal)

    def _check_functions(self, statement: Statement, user: WarehouseUser) -> None:
        for node, parent in statement.ast.walk():
            if node.kind != "Function":
                continue
            name = node.argument.lower()
            if name in self.denied_functions:
                raise _access_denied(
                    user.name, f"function {node.argument} reaches outside the warehouse"
                )
            if user.role != "writer" and name in self.writer_functions:
                raise _access_denied(user.name, f"table function {node.argument} is for writers")
            if user.role == "opendata" and name.startswith(_OPENDATA_DENIED_FUNCTION_PREFIXES):
                raise _access_denied(user.name, f"function {node.argument} is not open data")
            if statement.kind == "InsertQuery" and parent is statement.ast:
                raise _access_denied(
                    user.name, "INSERT INTO FUNCTION reaches outside the warehouse"
                )

    @staticmethod
    def _check_storage(statement: Statement, user: WarehouseUser) -> None:
        tokens = statement.tokens
        for a, b, c in zip(tokens, tokens[1:], tokens[2:], strict=False):
            if a.is_word("ENGINE") and b.is_punct("=") and c.name.lower() not in _SAFE_ENGINES:
                raise _access_denied(user.name, f"engine {c.name} reaches outside the warehouse")
            if statement.kind == "AttachQuery" and a.is_word("FROM") and b.kind == "string":
                raise _access_denied(user.name, "ATTACH ... FROM a path reaches server files")
        for node, _ in statement.ast.walk():
            if node.kind == "FunctionWithKeyValueArguments":
                _check_dictionary_source(node.argument, statement.tokens, user)
        if any(t.kind == "word" and t.text.lower() in _SSD_LAYOUTS for t in tokens):
            raise _access_denied(user.name, "SSD dictionary layouts write to server paths")

    def _check_tables(self, statement: Statement, user: WarehouseUser, database: str) -> None:
        dotted = {t.name for t in statement.tokens if t.kind == "quoted" and "." in t.name}
        for reference in self._table_references(statement.ast):
            if any(name in reference for name in dotted):
                # `a.b`.c and a.`b.c` both dump as a.b.c: which database is meant is unclear.
                raise _access_denied(user.name, f"ambiguous quoted table name in {reference}")
            db, table = reference.split(".", 1) if "." in reference else (database, reference)
            if not _table_allowed(user.role, db, table):
                raise _access_denied(user.name, f"{user.role} users cannot read {db}.{table}")

    def _table_references(self, ast: AstNode) -> Iterator[str]:
        for node, parent in ast.walk():
            if node.kind == "TableIdentifier":
                yield node.argument
            elif node.kind == "Function" and parent is not None:
                name = node.argument
                if parent.kind == "TableExpression" and name.lower() not in self.table_functions:
                    yield name  # a parameterized view
                if name.lower() in _IN_FUNCTIONS and node.children:
                    operands = node.children[0].children
                    if len(operands) == 2 and operands[1].kind == "Identifier":
                        yield operands[1].argument  # `x IN db.table`


def _table_allowed(role: Role, db: str, table: str) -> bool:
    if db == "system":
        allowed = _ANALYST_SYSTEM_TABLES if role == "analyst" else _HARMLESS_SYSTEM_TABLES
        return table in allowed
    return role == "analyst" or db == OPEN_DATA_DATABASE


def _check_dictionary_source(source: str, tokens: Sequence[Token], user: WarehouseUser) -> None:
    if source.lower() not in _DICTIONARY_SOURCES:
        raise _access_denied(user.name, f"dictionary source {source} reaches outside the warehouse")
    for i, token in enumerate(tokens[:-1]):
        if token.is_word("CLICKHOUSE") and tokens[i + 1].is_punct("("):
            keys = set()
            for inner in tokens[i + 2 :]:
                if inner.depth <= token.depth:
                    break
                if inner.kind == "word":
                    keys.add(inner.text.lower())
            if not keys <= _DICTIONARY_SOURCE_KEYS:
                extra = ", ".join(sorted(keys - _DICTIONARY_SOURCE_KEYS))
                raise _access_denied(user.name, f"dictionary source keys {extra} are not served")


def _setting_names(statement: Statement) -> Iterator[str]:
    """Names assigned in SETTINGS / SETTING clauses and SET statements (over-inclusive)."""
    tokens = statement.tokens
    starts = [i for i, t in enumerate(tokens) if t.is_word("SETTINGS", "SETTING")]
    if statement.kind == "Set":
        starts.append(0)
    for start in starts:
        depth = tokens[start].depth
        for i in range(start + 1, len(tokens) - 1):
            if tokens[i].depth < depth:
                break
            assigned = tokens[i].depth == depth and tokens[i + 1].is_punct("=")
            if assigned and tokens[i].kind in ("word", "quoted"):
                yield tokens[i].name


def _identifier_params(tokens: Sequence[Token]) -> Iterator[str]:
    """Names of `{name:Identifier}` placeholders."""
    for i in range(len(tokens) - 4):
        window = tokens[i : i + 5]
        placeholder = (
            window[0].is_punct("{") and window[2].is_punct(":") and window[4].is_punct("}")
        )
        if placeholder and window[3].text == "Identifier":
            yield window[1].text


# No dots either: chDB runs `{t:Identifier}` = 'a.b' as one name `a.b` but dumps it as a.b.
_SIMPLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---------------------------------------------------------------------------------------------
# Request bodies: transfer coding, content encoding, and where the SQL ends.


class _Decoder(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


_DECODERS: dict[str, Callable[[], _Decoder]] = {
    "lz4": lz4.frame.LZ4FrameDecompressor,
    "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
    "gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: zlib.decompressobj(16 + zlib.MAX_WBITS),
    "deflate": lambda: zlib.decompressobj(),
    "xz": lzma.LZMADecompressor,
    "bz2": bz2.BZ2Decompressor,
}


class Inflater:
    """Decodes one Content-Encoding; clients send several concatenated frames or members."""

    def __init__(self, encoding: str) -> None:
        if encoding not in _DECODERS:
            raise WarehouseError(
                271, "CANNOT_DECOMPRESS", f"Unknown Content-Encoding of HTTP request: {encoding}"
            )
        self._new = _DECODERS[encoding]
        self._decoder: _Decoder | None = None

    def feed(self, data: bytes) -> bytes:
        out = []
        try:
            while data:
                self._decoder = self._decoder or self._new()
                out.append(self._decoder.decompress(data))
                data = b""
                if self._decoder.eof:
                    data, self._decoder = self._decoder.unused_data, None
        except (OSError, EOFError, zlib.error, lzma.LZMAError, RuntimeError) as exc:
            raise WarehouseError(
                271, "CANNOT_DECOMPRESS", f"Cannot decompress request: {exc}"
            ) from None
        return b"".join(out)

    def finish(self) -> None:
        if self._decoder is not None:
            raise WarehouseError(271, "CANNOT_DECOMPRESS", "Compressed request body is truncated")


class BodyReader:
    """The raw request body, by Content-Length or chunked transfer coding."""

    def __init__(self, rfile: Any, headers: Message) -> None:
        self._rfile = rfile
        self._chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length = headers.get("Content-Length", "0") if not self._chunked else "0"
        self._left = int(length) if length.isdigit() else -1
        # A body we cannot delimit is never read: the connection closes after the answer.
        self.exhausted = not self._chunked and self._left == 0

    def read(self, size: int = READ_CHUNK) -> bytes:
        if self.exhausted:
            return b""
        if self._left < 0:
            raise WarehouseError(36, "BAD_ARGUMENTS", "Invalid Content-Length")
        data = (
            self._read_chunked(size) if self._chunked else self._rfile.read(min(size, self._left))
        )
        if not self._chunked:
            self._left -= len(data)
            if not data and self._left:
                raise WarehouseError(33, "CANNOT_READ_ALL_DATA", "Request body ended early")
            self.exhausted = self._left == 0
        return data

    def _read_chunked(self, size: int) -> bytes:
        if self._left == 0:
            line = self._rfile.readline(1024)
            size_field = line.split(b";", 1)[0].strip()
            if not size_field or size_field.strip(b"0123456789abcdefABCDEF"):
                raise WarehouseError(33, "CANNOT_READ_ALL_DATA", "Bad chunked body")
            self._left = int(size_field, 16)
            if self._left == 0:
                while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self.exhausted = True
                return b""
        data = self._rfile.read(min(size, self._left))
        if not data:
            raise WarehouseError(33, "CANNOT_READ_ALL_DATA", "Request body ended early")
        self._left -= len(data)
        if self._left == 0:
            self._rfile.readline(8)  # CRLF after the chunk
        return data

    def drain(self, limit: int = DRAIN_LIMIT) -> None:
        """Discard what is left, so the client gets the answer instead of a broken pipe."""
        with suppress(WarehouseError, OSError):
            while not self.exhausted and limit > 0:
                limit -= len(self.read(READ_CHUNK)) or limit


def decoded_chunks(body: BodyReader, encoding: str | None) -> Iterator[bytes]:
    inflater = Inflater(encoding) if encoding and encoding != "identity" else None
    while chunk := body.read():
        data = inflater.feed(chunk) if inflater else chunk
        if data:
            yield data
    if inflater:
        inflater.finish()


@dataclass
class StatementSource:
    """The SQL of a request and, for `INSERT ... FORMAT x` / `VALUES`, its data stream."""

    sql: str
    data: Iterator[bytes] | None = None


_MORE = -1  # the statement may go on in bytes not read yet


def _after_format_name(text: str, pos: int, eof: bool) -> int:
    """ClickHouse: data starts after the newline if there is one, else after the blanks."""
    while pos < len(text) and text[pos] in " \t\f":
        pos += 1
    if pos < len(text) and text[pos] == "\r":
        pos += 1
    if pos < len(text) and text[pos] == "\n":
        return pos + 1
    return pos if pos < len(text) or eof else _MORE


def _insert_target_end(tokens: Sequence[Token]) -> int | None:
    """Index after `INSERT INTO [TABLE] db.t`; None for INSERT INTO FUNCTION or too few tokens."""
    i = 1 + (len(tokens) > 1 and tokens[1].is_word("INTO"))
    i += len(tokens) > i and tokens[i].is_word("TABLE")
    if len(tokens) <= i + 1 or tokens[i].is_word("FUNCTION"):
        return None
    return i + (3 if tokens[i + 1].is_punct(".") else 1)


def insert_data_offset(text: str, eof: bool) -> int | None:
    """Where inline INSERT data starts in `text`, None if it has none, _MORE if undecided.

    `text` is the body decoded as latin-1, so offsets are byte offsets. Only the position is
    taken from here: the statement before it is still parsed and checked by chDB. Growing
    prefixes are scanned so a body of binary data is not tokenized whole.
    """
    size = 4096
    while True:
        offset = _insert_data_offset(text[:size], eof and size >= len(text))
        if offset != _MORE or size >= len(text):
            return offset
        size *= 4


def _insert_data_offset(text: str, eof: bool) -> int | None:
    tokens, _ = tokenize(text)
    if not tokens:
        return None if eof else _MORE
    if not tokens[0].is_word("INSERT"):
        return None
    start = _insert_target_end(tokens)
    for i in range(start or len(tokens), len(tokens)):
        token = tokens[i]
        complete = token.end < len(text) or eof
        if token.depth or not complete:
            continue
        if token.is_word("SELECT", "WITH", "INFILE"):
            return None
        if token.is_word("VALUES"):
            return token.end
        if token.is_word("FORMAT") and i + 1 < len(tokens) and tokens[i + 1].kind == "word":
            name = tokens[i + 1]
            return _after_format_name(text, name.end, eof) if name.end < len(text) or eof else _MORE
    return None if eof else _MORE


def read_statement(
    query_param: str, chunks: Iterator[bytes], max_query_size: int
) -> StatementSource:
    """The statement of a request: URL `query` then the body, as ClickHouse concatenates them.

    The INSERT data after `FORMAT x` is left in the stream, so inserts run in constant memory.
    """
    buffer = bytearray(query_param.encode() + b"\n" if query_param else b"")
    eof, insert_undecided = False, True
    while True:
        if not eof:
            chunk = next(chunks, None)
            eof = chunk is None
            buffer += chunk or b""
        offset = insert_data_offset(buffer.decode("latin-1"), eof) if insert_undecided else None
        if offset is not None and offset != _MORE:
            rest = bytes(buffer[offset:])
            return StatementSource(
                buffer[:offset].decode("utf-8", "replace"), _prepend(rest, chunks)
            )
        insert_undecided = offset == _MORE
        if eof:
            return StatementSource(buffer.decode("utf-8", "replace"))
        limit = INSERT_HEAD_LIMIT if insert_undecided else max_query_size
        if len(buffer) > limit:
            raise WarehouseError(
                62,
                "SYNTAX_ERROR",
                "Max query size exceeded (can be increased with the `max_query_size` setting)",
            )


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    return itertools.chain([first] if first else [], rest)


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """Fields of a multipart/form-data body (clickhouse-connect sends long parameters so)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None or not isinstance(name, str):
            raise WarehouseError(48, "NOT_IMPLEMENTED", "External data tables are not supported")
        payload = part.get_payload(decode=True)
        fields[name] = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return fields


# ---------------------------------------------------------------------------------------------
# Responses: encodings, content types.


class _Encoder(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Lz4Encoder:
    """One LZ4 frame for the whole response (the client reads a single frame)."""

    def __init__(self) -> None:
        self._compressor = lz4.frame.LZ4FrameCompressor()
        self._header = self._compressor.begin()

    def compress(self, data: bytes) -> bytes:
        header, self._header = self._header, b""
        return header + self._compressor.compress(data)

    def flush(self) -> bytes:
        header, self._header = self._header, b""
        return header + self._compressor.flush()


_ENCODERS: dict[str, Callable[[int], _Encoder]] = {
    "lz4": lambda level: _Lz4Encoder(),
    "zstd": lambda level: zstandard.ZstdCompressor(level=level).compressobj(),
    "gzip": lambda level: zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS),
    "deflate": lambda level: zlib.compressobj(level),
}


def response_encoding(accept: str | None, params: Mapping[str, str]) -> str | None:
    """The client's first acceptable encoding; chDB's enable_http_compression default is 1."""
    if not accept or params.get("enable_http_compression", "1") in ("0", "false"):
        return None
    for item in accept.split(","):
        encoding = item.split(";", 1)[0].strip().lower()
        if encoding in _ENCODERS:
            return encoding
    return None


def _content_type(fmt: str) -> str:
    name = fmt.lower()
    if name.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if name.startswith("csv"):
        return f"text/csv; charset=UTF-8; header={'present' if 'withnames' in name else 'absent'}"
    if name.startswith("json"):
        return "application/json; charset=UTF-8"
    if name.startswith(("pretty", "vertical", "markdown", "values")):
        return "text/plain; charset=UTF-8"
    if name == "xml":
        return "application/xml; charset=UTF-8"
    return "application/octet-stream"


# Formats whose chDB stream chunks concatenate into one valid output (no per-chunk headers).
_STREAMABLE_FORMATS = frozenset(
    {"native", "rowbinary", "tabseparated", "tsv", "tabseparatedraw", "tsvraw", "csv"}
    | {"jsoneachrow", "jsonlines", "ndjson", "jsoncompacteachrow", "jsonstringseachrow"}
    | {"jsoncompactstringseachrow"}
)


@dataclass
class Result:
    """What a statement produced: a buffered body or a stream of chunks."""

    output_format: str | None
    summary: dict[str, int]
    body: bytes = b""
    stream: Generator[bytes, None, None] | None = None


def _summary_of(result: Any, elapsed_s: float) -> dict[str, int]:
    return {
        "read_rows": int(result.rows_read()),
        "read_bytes": int(result.bytes_read()),
        "written_rows": int(result.rows_written()),
        "written_bytes": int(result.bytes_written()),
        "elapsed_ns": int(elapsed_s * 1e9),
    }


# ---------------------------------------------------------------------------------------------
# Users and sessions.


@dataclass(frozen=True)
class WarehouseUser:
    name: str
    password: str
    role: Literal["writer", "analyst", "opendata"]


def _auth_failed(name: str) -> WarehouseError:
    return WarehouseError(
        516,
        "AUTHENTICATION_FAILED",
        f"{name}: Authentication failed: password is incorrect, or there is no user with such name",
    )


@dataclass
class Session:
    """A ClickHouse HTTP session: one chDB handle keeps its temporary tables and SETs.

    URL settings apply to one query, as in ClickHouse, but clients resend the same ones with
    every query: they stay applied (`overrides`) with what undoes them (`restore`) until a
    request brings different ones, instead of being set and undone per query.
    """

    user: str
    connection: Any
    timeout_s: float
    last_used: float = field(default_factory=time.monotonic)
    database: str | None = None  # chosen by the session's USE statements
    handle_database: str | None = None  # current database of the chDB handle
    overrides: dict[str, str] = field(default_factory=dict)
    restore: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiters: int = 0  # requests about to take the lock (changed under the registry's lock)

    @property
    def idle(self) -> bool:
        return not self.waiters and not self.lock.locked()

    def prepare(self, database: str, settings: Mapping[str, str]) -> None:
        if self.handle_database != database:
            _use(self.connection, database)
            self.handle_database = database
        if settings == self.overrides:
            return
        if self.restore:
            _set(self.connection, self.restore)
        self.overrides, self.restore = {}, {}
        if settings:
            self.restore = _current_settings(self.connection, settings)
            _set(self.connection, {k: _quote_string(v) for k, v in settings.items()})
            self.overrides = dict(settings)

    def record(self, statement: Statement) -> None:
        """Keep session state right after the user's own USE or SET."""
        if statement.used_database():
            self.database = self.handle_database = statement.used_database()
        if statement.kind == "Set":
            for name in _setting_names(statement):
                self.overrides.pop(name, None)
                self.restore.pop(name, None)


class SessionRegistry:
    """Named sessions, expired after their timeout and evicted (idle ones) beyond capacity."""

    def __init__(self, open_connection: Callable[[WarehouseUser], Any], capacity: int) -> None:
        self._open = open_connection
        self._capacity = capacity
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def acquire(
        self, session_id: str, user: WarehouseUser, timeout_s: float, must_exist: bool
    ) -> Iterator[Session]:
        session = self._claim(session_id, user, timeout_s, must_exist)
        try:
            # A client sends its next query as soon as it has read a response, maybe on
            # another connection, while the previous request is still releasing the session.
            locked = session.lock.acquire(timeout=SESSION_LOCK_WAIT_S)
        finally:
            with self._lock:
                session.waiters -= 1
        if not locked:
            raise WarehouseError(
                373, "SESSION_IS_LOCKED", f"Session {session_id} is locked by a concurrent client"
            )
        try:
            yield session
        finally:
            session.last_used, session.timeout_s = time.monotonic(), timeout_s
            session.lock.release()

    def _claim(
        self, session_id: str, user: WarehouseUser, timeout_s: float, must_exist: bool
    ) -> Session:
        """The session (new if need be), marked as awaited so that nobody closes it."""
        with self._lock:
            self._expire()
            session = self._sessions.get(session_id)
            if session is None:
                if must_exist:
                    raise WarehouseError(
                        372, "SESSION_NOT_FOUND", f"Session {session_id} not found"
                    )
                session = self._create(session_id, user, timeout_s)
            if session.user != user.name:
                raise _access_denied(user.name, f"session {session_id} belongs to another user")
            session.waiters += 1
            self._sessions.move_to_end(session_id)
            return session

    def _create(self, session_id: str, user: WarehouseUser, timeout_s: float) -> Session:
        idle = [key for key, s in self._sessions.items() if s.idle]
        for key in idle[: max(0, len(self._sessions) - self._capacity + 1)]:
            self._close(key)
        session = Session(user.name, self._open(user), timeout_s)
        self._sessions[session_id] = session
        return session

    def _expire(self) -> None:
        now = time.monotonic()
        for key, session in list(self._sessions.items()):
            if session.idle and now - session.last_used > session.timeout_s:
                self._close(key)

    def _close(self, key: str) -> None:
        self._sessions.pop(key).connection.close()

    def close_all(self) -> None:
        with self._lock:
            for key in list(self._sessions):
                self._close(key)


# ---------------------------------------------------------------------------------------------
# The engine: one chDB data path, a handle per request.


@dataclass
class Request:
    """One HTTP query request, authenticated and split into its parts."""

    method: str
    user: WarehouseUser
    params: dict[str, str]
    query_id: str
    default_format: str
    bind_params: dict[str, str]
    settings: dict[str, str]


# Parameters ClickHouse's HTTP handler consumes itself: never settings of the statement.
_TRANSPORT_PARAMS = frozenset(
    {"query", "database", "default_format", "session_id", "session_timeout", "session_check"}
    | {"query_id", "user", "password", "quota_key", "role", "buffer_size", "wait_end_of_query"}
    | {"compress", "decompress", "client_protocol_version", "enable_http_compression"}
    | {"http_zlib_compression_level", "send_progress_in_http_headers", "stacktrace"}
    | {"http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close"}
    | {"http_response_buffer_size", "http_wait_end_of_query", "add_http_cors_header"}
    | {"http_native_compression_disable_checksumming_on_decompress", "max_result_bytes_http"}
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMAT_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def _quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def request_settings(params: Mapping[str, str], user: str) -> dict[str, str]:
    """Settings passed as URL parameters, screened like SETTINGS clauses."""
    settings = {}
    for name, value in params.items():
        if name in _TRANSPORT_PARAMS or name.startswith("param_"):
            continue
        if not _SETTING_NAME.match(name):
            raise WarehouseError(115, "UNKNOWN_SETTING", f"Unknown setting {name}")
        refusal = setting_refusal(name)
        if refusal:
            raise _access_denied(user, refusal)
        settings[name] = value
    return settings


class Engine:
    """Owns the chDB data path; keeps one handle open so the engine stays up between requests."""

    def __init__(self, data_path: Path, users: Sequence[WarehouseUser], default_database: str):
        data_path.mkdir(parents=True, exist_ok=True)
        self.path = str(data_path.resolve())
        self.users = {user.name: user for user in users}
        self.default_database = default_database
        self._anchor = chdb.connect(self.path)
        try:
            self.version, self.timezone, self.policy = self._start(users)
        except BaseException:
            self._anchor.close()
            raise
        self.parser = StatementParser()
        self.sessions = SessionRegistry(self.open_connection, MAX_SESSIONS)
        self._active = 0
        self._idle = threading.Condition()

    def _start(self, users: Sequence[WarehouseUser]) -> tuple[str, str, Policy]:
        """Engine facts, and the databases users are sent to (created if missing)."""
        version, timezone = _run(self._anchor, "SELECT version(), timezone()", "TSV").split()
        wanted = {self.default_database}
        if any(user.role == "opendata" for user in users):
            wanted.add(OPEN_DATA_DATABASE)
        for database in sorted(wanted):
            _run(
                self._anchor, f"CREATE DATABASE IF NOT EXISTS {_quote_identifier(database)}", "TSV"
            )
        functions = _run(self._anchor, "SELECT name FROM system.table_functions", "TSV")
        policy = Policy.from_table_functions(functions.decode().split())
        return version.decode(), timezone.decode(), policy

    def open_connection(self, user: WarehouseUser) -> Any:
        # readonly=1 at connect: the user cannot lift it (chDB refuses `SET readonly`).
        return chdb.connect(self.path if user.role == "writer" else f"{self.path}?readonly=1")

    def authenticate(self, name: str, password: str) -> WarehouseUser:
        user = self.users.get(name)
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            raise _auth_failed(name)
        return user

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def close(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Let running requests finish (a while), then close every chDB handle."""
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout=grace_s)
        self.sessions.close_all()
        self._anchor.close()

    # -- one request ---------------------------------------------------------------------------

    @contextmanager
    def handle(self, request: Request) -> Iterator[tuple[Any, Session | None]]:
        """The request's chDB handle: its session's, or a fresh one closed afterwards."""
        session_id = request.params.get("session_id")
        if not session_id:
            conn = self.open_connection(request.user)
            try:
                yield conn, None
            finally:
                conn.close()
            return
        timeout = _session_timeout(request.params.get("session_timeout"))
        must_exist = request.params.get("session_check") == "1"
        with self.sessions.acquire(session_id, request.user, timeout, must_exist) as session:
            yield session.connection, session

    def database_for(self, request: Request, session: Session | None) -> str:
        wanted = request.params.get("database") or (session.database if session else None)
        if request.user.role != "opendata":
            return wanted or self.default_database
        if wanted not in (None, OPEN_DATA_DATABASE):
            raise _access_denied(
                request.user.name, f"opendata users read only {OPEN_DATA_DATABASE}"
            )
        return OPEN_DATA_DATABASE

    @staticmethod
    def prepare(
        conn: Any, session: Session | None, database: str, settings: Mapping[str, str]
    ) -> None:
        """USE the database and SET the request's settings on its handle."""
        if session is not None:
            session.prepare(database, settings)
            return
        _use(conn, database)
        if settings:
            _set(conn, {k: _quote_string(v) for k, v in settings.items()})

    def execute(
        self, conn: Any, statement: Statement, source: StatementSource, request: Request
    ) -> Result:
        if source.data is not None:
            return self._insert(conn, statement, source.data)
        fmt = statement.format_clause() or request.default_format
        output = fmt if statement.kind.startswith(_RESULT_KIND_PREFIXES) else None
        streaming = request.params.get("wait_end_of_query") != "1"
        if (
            output
            and statement.kind in _SELECT_KINDS
            and streaming
            and fmt.lower() in _STREAMABLE_FORMATS
        ):
            return self._stream(conn, statement, fmt, request.bind_params)
        started = time.monotonic()
        try:
            result = conn.query(statement.text, fmt, params=request.bind_params)
        except Exception as exc:
            raise WarehouseError.from_engine(exc) from None
        return Result(
            output, _summary_of(result, time.monotonic() - started), bytes(result.bytes())
        )

    @staticmethod
    def _stream(conn: Any, statement: Statement, fmt: str, params: dict[str, str]) -> Result:
        try:
            streaming = conn.send_query(statement.text, fmt, params=params)
            first = streaming.fetch()  # most errors show up here, before any header is sent
        except Exception as exc:
            raise WarehouseError.from_engine(exc) from None
        summary = {"read_rows": 0, "read_bytes": 0, "written_rows": 0, "written_bytes": 0}
        return Result(fmt, summary, stream=_stream_chunks(streaming, first))

    @staticmethod
    def _insert(conn: Any, statement: Statement, data: Iterator[bytes]) -> Result:
        head = statement.insert_head()
        if head is None:
            raise WarehouseError(
                62, "SYNTAX_ERROR", "Data was sent with a statement that takes none"
            )
        sql, fmt = head
        if fmt.lower() != "values":
            return _stream_insert(conn, sql, fmt, data)
        # Users can never change these (denied settings), so DEFAULT is what was there.
        _set(conn, _LITERAL_VALUES_SETTINGS)
        try:
            return _stream_insert(conn, sql, fmt, data)
        finally:
            _set(conn, dict.fromkeys(_LITERAL_VALUES_SETTINGS, "DEFAULT"))


def _stream_chunks(streaming: Any, first: Any) -> Generator[bytes, None, None]:
    """Chunks of a chDB stream; closing early cancels it, so a client that went away stops
    the query now rather than at garbage collection. (chDB's docs also warn that a handle
    with an open stream answers other queries empty; not seen with 4.4, cheap to rule out.)"""
    try:
        chunk = first
        while chunk is not None:
            yield bytes(chunk.bytes())
            chunk = streaming.fetch()
    finally:
        with suppress(Exception):
            streaming.cancel()


def _stream_insert(conn: Any, sql: str, fmt: str, data: Iterator[bytes]) -> Result:
    started = time.monotonic()
    try:
        inserter = conn.send_insert(sql, fmt)
    except Exception as exc:
        raise WarehouseError.from_engine(exc) from None
    try:
        for chunk in data:
            inserter.append(chunk)
        written = inserter.finish()
    except WarehouseError:
        inserter.cancel()
        raise
    except Exception as exc:
        with _suppress_engine_errors():
            inserter.cancel()
        raise WarehouseError.from_engine(exc) from None
    summary = {
        "read_rows": 0,
        "read_bytes": 0,
        "written_rows": int(written.rows_written),
        "written_bytes": int(written.bytes_written),
        "elapsed_ns": int((time.monotonic() - started) * 1e9),
    }
    return Result(None, summary)


@contextmanager
def _suppress_engine_errors() -> Iterator[None]:
    try:
        yield
    except Exception:  # the first error is the one worth reporting
        log.debug("ignored error while cleaning up", exc_info=True)


def _current_settings(conn: Any, names: Iterable[str]) -> dict[str, str]:
    """SET values (SQL) that put `names` back as they are now on this handle."""
    wanted = ", ".join(_quote_string(name) for name in names)
    rows = _run(
        conn,
        f"SELECT name, value, changed FROM system.settings WHERE name IN ({wanted})",
        "JSONCompactEachRow",
    )
    values = {}
    for line in rows.decode().splitlines():
        name, value, changed = json.loads(line)
        values[name] = _quote_string(value) if changed else "DEFAULT"
    return values


def _set(conn: Any, values: Mapping[str, str]) -> None:
    """SET names to SQL values (quoted literals or DEFAULT) on a handle."""
    _run(conn, "SET " + ", ".join(f"{name} = {value}" for name, value in values.items()), "TSV")


def _use(conn: Any, database: str) -> None:
    _run(conn, f"USE {_quote_identifier(database)}", "TSV")


def _session_timeout(value: str | None) -> float:
    try:
        timeout = float(value) if value else DEFAULT_SESSION_TIMEOUT_S
    except ValueError:
        raise WarehouseError(36, "BAD_ARGUMENTS", f"Invalid session timeout: {value}") from None
    if not 0 < timeout <= MAX_SESSION_TIMEOUT_S:
        raise WarehouseError(
            36, "BAD_ARGUMENTS", f"Session timeout must be in (0, {MAX_SESSION_TIMEOUT_S}]"
        )
    return timeout


# ---------------------------------------------------------------------------------------------
# HTTP


class WarehouseHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the engine; one thread per connection."""

    daemon_threads = True
    request_queue_size = 128  # pooled clients open bursts of connections (backlog default: 5)
    engine: Engine


class _WarehouseHTTPServerV6(WarehouseHTTPServer):
    address_family = socket.AF_INET6


class WarehouseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, chunked responses
    server_version = DISPLAY_NAME
    timeout = 300  # idle keep-alive connections are closed after this
    server: WarehouseHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs stall every small keep-alive response by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        self._body = BodyReader(self.rfile, self.headers)
        if url.path == "/ping" or (
            url.path in ("", "/") and method == "GET" and "query" not in params
        ):
            self._body.drain()
            self._send_bytes(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        if url.path not in ("", "/"):
            self._body.drain()
            message = f"There is no handle {url.path}\n\nUse / or /ping for health checks.\n"
            self._send_bytes(404, message.encode(), {"Content-Type": "text/plain; charset=UTF-8"})
            return
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            with self.server.engine.in_flight():
                self._serve_query(method, params, query_id)
        except WarehouseError as exc:
            self._send_error(exc, query_id)
        except OSError:  # the client went away (or timed out) mid-request
            self.close_connection = True
        except Exception as exc:  # a bug here must still answer in ClickHouse's shape
            log.exception("unexpected error serving a query")
            self._send_error(WarehouseError(1001, "STD_EXCEPTION", repr(exc)), query_id)

    def _serve_query(self, method: str, params: dict[str, str], query_id: str) -> None:
        engine = self.server.engine
        user = engine.authenticate(*self._credentials(params))
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        chunks = decoded_chunks(self._body, encoding)
        content_type = self.headers.get("Content-Type", "")
        if content_type.lower().startswith("multipart/form-data"):
            params.update(parse_form(content_type, _read_all(chunks, FORM_BODY_LIMIT)))
            chunks = iter(())
        request = _make_request(method, user, params, query_id, self.headers)
        with ExitStack() as stack:
            conn, session = stack.enter_context(engine.handle(request))
            database = engine.database_for(request, session)
            engine.prepare(conn, session, database, request.settings)
            source = read_statement(params.get("query", ""), chunks, _max_query_size(params))
            statement = engine.parser.parse(conn, source.sql, request.bind_params)
            engine.policy.check(statement, user, database, get=method == "GET")
            result = engine.execute(conn, statement, source, request)
            if result.stream is not None:
                stack.callback(result.stream.close)  # before the handle is released
            if session is not None:
                session.record(statement)
            self._send_result(result, request)

    def _credentials(self, params: Mapping[str, str]) -> tuple[str, str]:
        """ClickHouse's three ways: X-ClickHouse-User/Key, HTTP Basic, user/password params."""
        methods = []
        if "X-ClickHouse-User" in self.headers:
            methods.append(
                (self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", ""))
            )
        authorization = self.headers.get("Authorization")
        if authorization:
            methods.append(_basic_credentials(authorization))
        if "user" in params or "password" in params:
            methods.append((params.get("user", "default"), params.get("password", "")))
        if len(methods) > 1:
            raise WarehouseError(
                516,
                "AUTHENTICATION_FAILED",
                "Invalid authentication: it is not allowed to use several authentication methods",
            )
        return methods[0] if methods else ("default", "")

    # -- responses -----------------------------------------------------------------------------

    def _common_headers(self, request: Request, summary: Mapping[str, int]) -> dict[str, str]:
        timezone = request.settings.get("session_timezone") or self.server.engine.timezone
        return {
            "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
            "X-ClickHouse-Query-Id": request.query_id,
            "X-ClickHouse-Timezone": timezone,
            "X-ClickHouse-Summary": json.dumps({k: str(v) for k, v in summary.items()}),
        }

    def _send_result(self, result: Result, request: Request) -> None:
        headers = self._common_headers(request, result.summary)
        if result.output_format:
            headers["X-ClickHouse-Format"] = result.output_format
            headers["Content-Type"] = _content_type(result.output_format)
        else:
            headers["Content-Type"] = "text/plain; charset=UTF-8"
        encoding = response_encoding(self.headers.get("Accept-Encoding"), request.params)
        encoder = _ENCODERS[encoding](_compression_level(request.params)) if encoding else None
        if encoding:
            headers["Content-Encoding"] = encoding
        if result.stream is None:
            body = encoder.compress(result.body) + encoder.flush() if encoder else result.body
            self._send_bytes(200, body, headers)
        else:
            self._send_stream(result.stream, headers, encoder)

    def _send_bytes(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if not self._body.exhausted:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _send_stream(
        self, chunks: Iterator[bytes], headers: dict[str, str], encoder: _Encoder | None
    ) -> None:
        """Chunked body; an error after the headers is written in the tagged form clients parse."""
        tag = secrets.token_hex(16)
        headers["X-ClickHouse-Exception-Tag"] = tag
        headers["Transfer-Encoding"] = "chunked"
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        encode = encoder.compress if encoder else bytes
        try:
            for chunk in chunks:
                self._write_chunk(encode(chunk))
        except Exception as exc:
            error = WarehouseError.from_engine(exc)
            message = error.body(self.server.engine.version).rstrip("\n")
            block = (
                f"__exception__\r\n{tag}\r\n{message}\n{len(message)} {tag}\r\n__exception__\r\n"
            )
            self._write_chunk(encode(block.encode()))
            self.close_connection = True
        self._write_chunk(encoder.flush() if encoder else b"")
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _send_error(self, error: WarehouseError, query_id: str) -> None:
        if error.code not in (516, 194, 192, 193):
            log.info("query %s failed: %s", query_id, error.message)
        self._body.drain()
        body = error.body(self.server.engine.version).encode()
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Server-Display-Name": DISPLAY_NAME,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Exception-Code": str(error.code),
        }
        try:
            self._send_bytes(error.http_status, body, headers)
        except OSError:
            self.close_connection = True


def _basic_credentials(authorization: str) -> tuple[str, str]:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise WarehouseError(
            516, "AUTHENTICATION_FAILED", f"Unsupported authorization scheme {scheme}"
        )
    try:
        name, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise WarehouseError(516, "AUTHENTICATION_FAILED", "Malformed Basic credentials") from None
    return name, password


def _make_request(
    method: str,
    user: WarehouseUser,
    params: dict[str, str],
    query_id: str,
    headers: Message,
) -> Request:
    if params.get("compress") == "1" or params.get("decompress") == "1":
        raise WarehouseError(
            48, "NOT_IMPLEMENTED", "ClickHouse's native compression is not supported"
        )
    if "X-ClickHouse-Database" in headers and "database" not in params:
        params["database"] = headers["X-ClickHouse-Database"]
    default_format = (
        params.get("default_format") or headers.get("X-ClickHouse-Format") or "TabSeparated"
    )
    if not _FORMAT_NAME.match(default_format):
        raise WarehouseError(73, "UNKNOWN_FORMAT", f"Unknown format {default_format}")
    bind = {name[6:]: value for name, value in params.items() if name.startswith("param_")}
    settings = request_settings(params, user.name)
    return Request(method, user, params, query_id, default_format, bind, settings)


def _read_all(chunks: Iterator[bytes], limit: int) -> bytes:
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise WarehouseError(36, "BAD_ARGUMENTS", "Form body too large")
    return bytes(data)


def _max_query_size(params: Mapping[str, str]) -> int:
    try:
        return max(int(params.get("max_query_size", DEFAULT_MAX_QUERY_SIZE)), 1)
    except ValueError:
        return DEFAULT_MAX_QUERY_SIZE


def _compression_level(params: Mapping[str, str]) -> int:
    try:
        return min(max(int(params.get("http_zlib_compression_level", "3")), 1), 9)
    except ValueError:
        return 3


# ---------------------------------------------------------------------------------------------
# Public API


def _is_loopback(host: str) -> bool:
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses
    )


def create_server(
    data_path: Path,
    host: str,
    port: int,
    users: Sequence[WarehouseUser],
    *,
    default_database: str = "default",
    allow_remote: bool = False,
) -> ThreadingHTTPServer:
    """Open the chDB data at `data_path` and bind the ClickHouse HTTP interface (port 0: any).

    Loopback only unless `allow_remote`: chDB has no TLS, and the users here are all there is.
    """
    if not allow_remote and not _is_loopback(host):
        raise ValueError(f"refusing to listen on non-loopback host {host!r} without allow_remote")
    _validate_users(users)
    engine = Engine(Path(data_path), users, default_database)
    server_class = _WarehouseHTTPServerV6 if ":" in host else WarehouseHTTPServer
    try:
        server = server_class((host, port), WarehouseHandler)
    except OSError:
        engine.close(grace_s=0)
        raise
    server.engine = engine
    return server


def _validate_users(users: Sequence[WarehouseUser]) -> None:
    names = [user.name for user in users]
    if not users or len(set(names)) != len(names):
        raise ValueError("users must be a non-empty list with unique names")
    for user in users:
        if user.role not in ROLES:
            raise ValueError(f"user {user.name}: unknown role {user.role!r}")


def serve_forever(server: ThreadingHTTPServer) -> None:
    """Serve until SIGTERM/SIGINT (or `server.shutdown()`), then close chDB cleanly."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # shutdown() waits for the serving loop, so it must run outside the signal handler.
        def stop(signum: int, frame: Any) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        engine = getattr(server, "engine", None)
        if engine is not None:
            engine.close()


def load_users(text: str) -> list[WarehouseUser]:
    """Users from JSON: a list of {"name", "password", "role"}."""
    entries = json.loads(text)
    if not isinstance(entries, list):
        raise ValueError("users JSON must be a list")
    return [WarehouseUser(str(e["name"]), str(e["password"]), e["role"]) for e in entries]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="warehouse.server", description="Serve the ClickHouse HTTP interface over chDB data."
    )
    parser.add_argument("--data", type=Path, required=True, help="chDB data directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123, help="0 picks a free port")
    parser.add_argument("--database", default="default", help="default database (created)")
    users = parser.add_mutually_exclusive_group(required=True)
    users.add_argument("--users-file", type=Path, help="JSON list of {name, password, role}")
    users.add_argument("--users-json", help="the same list inline")
    parser.add_argument("--allow-remote", action="store_true", help="listen beyond loopback")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    users_text = args.users_file.read_text() if args.users_file else args.users_json
    server = create_server(
        args.data,
        args.host,
        args.port,
        load_users(users_text),
        default_database=args.database,
        allow_remote=args.allow_remote,
    )
    print(server.server_address[1], flush=True)  # the bound port, for whoever started us
    log.info("serving %s on %s:%s", args.data, args.host, server.server_address[1])
    serve_forever(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
