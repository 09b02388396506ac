"""A small SOQL: tokenizer, recursive-descent parser and a compiler to Python closures.

Supported: ``SELECT`` field list (relationship paths such as ``Account.Name`` or ``Owner.Email``,
``COUNT()``, ``COUNT(field)``), ``FROM``, ``USING SCOPE mine|everything``, ``WHERE`` with
``AND`` / ``OR`` / ``NOT`` and parentheses (mixing AND and OR needs parentheses, as in the real
language), ``= != <> < <= > >=``, ``LIKE`` with ``%`` and ``_``, ``[NOT] IN (...)``, ``null``,
string / number / boolean / date / datetime literals and the date literals ``TODAY``,
``YESTERDAY``, ``TOMORROW``, ``LAST_N_DAYS:n``, ``NEXT_N_DAYS:n``, ``N_DAYS_AGO:n``;
``ORDER BY`` (several fields, ASC/DESC, NULLS FIRST/LAST), ``LIMIT``, ``OFFSET``.

Everything else is refused with the error Salesforce gives (MALFORMED_QUERY, INVALID_FIELD,
INVALID_TYPE) and its message shape: the query line, a caret, ``ERROR at Row:r:Column:c``.

Values in records: strings (``None`` for empty), bools, datetimes as epoch seconds (int), dates as
``YYYY-MM-DD`` strings, numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from contactsync_sandbox.salesforce import ids
from contactsync_sandbox.salesforce.schema import Field, SObject, get_object

Record = dict[str, Any]
Getter = Callable[[Record], Any]
Predicate = Callable[[Record], bool]

MAX_OFFSET = 2000
KEYWORDS = frozenset(
    [
        "select",
        "from",
        "where",
        "and",
        "or",
        "not",
        "in",
        "like",
        "order",
        "by",
        "asc",
        "desc",
        "nulls",
        "first",
        "last",
        "limit",
        "offset",
        "true",
        "false",
        "null",
        "using",
        "scope",
        "group",
        "having",
        "includes",
        "excludes",
    ]
)
DATE_LITERALS = frozenset({"TODAY", "YESTERDAY", "TOMORROW"})
N_DATE_LITERALS = frozenset({"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"})
NO_SUCH_COLUMN = (
    "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field,"
    " be sure to append the '__c' after the custom field name. Please reference your WSDL or the"
    " describe call for the appropriate names."
)
BAD_RELATIONSHIP = (
    "Didn't understand relationship '{name}' in field path. If you are attempting to use a"
    " custom relationship, be sure to append the '__r' after the custom relationship name."
    " Please reference your WSDL or the describe call for the appropriate names."
)
BAD_TYPE = (
    "sObject type '{name}' is not supported. If you are attempting to use a custom object, be"
    " sure to append the '__c' after the entity name. Please reference your WSDL or the describe"
    " call for the appropriate names."
)
TYPE_NAMES = {"datetime": "dateTime", "int": "int", "double": "double", "currency": "currency"}


class SoqlError(Exception):
    """A refused query: ``code`` is MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE, ..."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def located(text: str, pos: int, message: str) -> str:
    """Salesforce's message layout: the offending line, a caret, the row and column."""
    before = text[:pos]
    row = before.count("\n") + 1
    line_start = before.rfind("\n") + 1
    col = pos - line_start + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    return f"\n{line}\n{' ' * (col - 1)}^\nERROR at Row:{row}:Column:{col}\n{message}"


# ---- tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # IDENT STRING NUMBER DATE DATETIME OP LPAREN RPAREN COMMA COLON EOF
    value: str
    pos: int

    def keyword(self) -> str | None:
        if self.kind == "IDENT" and self.value.lower() in KEYWORDS:
            return self.value.lower()
        return None

    def show(self) -> str:
        return "<EOF>" if self.kind == "EOF" else f"'{self.value}'"


_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\dT])")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPS = ("!=", "<>", "<=", ">=", "=", "<", ">")
# What a string literal keeps escaped (see _string), and how a plain comparison reads it.
_UNESCAPE = re.compile(r"\\([\\%_])")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            i = _string(text, i, out)
            continue
        match = _DATETIME.match(text, i) or _DATE.match(text, i)
        if match:
            kind = "DATETIME" if "T" in match.group() else "DATE"
            out.append(Token(kind, match.group(), i))
            i = match.end()
            continue
        match = _NUMBER.match(text, i)
        if match and (ch != "-" or not out or out[-1].kind in ("OP", "LPAREN", "COMMA", "COLON")):
            out.append(Token("NUMBER", match.group(), i))
            i = match.end()
            continue
        match = _IDENT.match(text, i)
        if match:
            out.append(Token("IDENT", match.group(), i))
            i = match.end()
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op:
            out.append(Token("OP", op, i))
            i += len(op)
            continue
        simple = {"(": "LPAREN", ")": "RPAREN", ",": "COMMA", ":": "COLON"}.get(ch)
        if simple is None:
            raise SoqlError("MALFORMED_QUERY", located(text, i, f"unexpected token: '{ch}'"))
        out.append(Token(simple, ch, i))
        i += 1
    out.append(Token("EOF", "", n))
    return out


def _string(text: str, start: int, out: list[Token]) -> int:
    i = start + 1
    chars: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "%_\\":
                # Kept escaped: only LIKE gives % and _ meaning, and an escaped backslash stays
                # escaped too, or the literal '\\_' (a backslash, then an underscore) would read
                # like '\_' (an escaped underscore).
                chars.append("\\" + nxt)
            elif nxt in _ESCAPES:
                chars.append(_ESCAPES[nxt])
            else:
                raise SoqlError(
                    "MALFORMED_QUERY",
                    located(
                        text,
                        i,
                        f"Invalid string literal '{text[start : i + 2]}'. Illegal"
                        " character sequence '\\" + nxt + "' in string literal.",
                    ),
                )
            i += 2
            continue
        if ch == "'":
            out.append(Token("STRING", "".join(chars), start))
            return i + 1
        chars.append(ch)
        i += 1
    raise SoqlError("MALFORMED_QUERY", located(text, start, "unexpected token: <EOF>"))


# ---- syntax tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    kind: str  # STRING NUMBER DATE DATETIME BOOL NULL DATE_LITERAL
    value: Any
    pos: int
    n: int = 0  # for LAST_N_DAYS:n and friends


@dataclass(frozen=True)
class Path:
    text: str
    pos: int


@dataclass
class Node:
    kind: str  # cmp in like and or not
    path: Path | None = None
    op: str = ""
    values: list[Literal] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    negate: bool = False


@dataclass
class OrderItem:
    path: Path
    descending: bool
    nulls_first: bool


@dataclass
class Parsed:
    text: str
    fields: list[Path]
    count: Path | None  # COUNT(field)
    count_only: bool  # COUNT()
    sobject: Path
    scope: str | None
    where: Node | None
    order: list[OrderItem]
    limit: int | None
    offset: int | None


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, token: Token | None = None) -> SoqlError:
        token = token or self.tok
        return SoqlError(
            "MALFORMED_QUERY", located(self.text, token.pos, f"unexpected token: {token.show()}")
        )

    def advance(self) -> Token:
        token = self.tok
        self.i += 1
        return token

    def accept(self, word: str) -> bool:
        if self.tok.keyword() == word:
            self.i += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.accept(word):
            raise self.error()

    def expect_kind(self, kind: str) -> Token:
        if self.tok.kind != kind:
            raise self.error()
        return self.advance()

    def parse(self) -> Parsed:
        self.expect("select")
        fields, count, count_only = self.select_list()
        self.expect("from")
        sobject = self.path(allow_dots=False)
        scope = None
        if self.accept("using"):
            self.expect("scope")
            scope_token = self.expect_kind("IDENT")
            scope = scope_token.value.lower()
            if scope not in ("mine", "everything"):
                raise self.error(scope_token)
        where = None
        if self.accept("where"):
            where = self.condition()
        order: list[OrderItem] = []
        if self.accept("order"):
            self.expect("by")
            order = self.order_list()
        limit = self.integer() if self.accept("limit") else None
        offset = self.integer() if self.accept("offset") else None
        if self.tok.kind != "EOF":
            raise self.error()
        return Parsed(
            self.text, fields, count, count_only, sobject, scope, where, order, limit, offset
        )

    def path(self, allow_dots: bool = True) -> Path:
        token = self.tok
        if token.kind != "IDENT" or token.keyword() is not None:
            raise self.error()
        if not allow_dots and "." in token.value:
            raise self.error()
        self.i += 1
        return Path(token.value, token.pos)

    def select_list(self) -> tuple[list[Path], Path | None, bool]:
        if self.tok.kind == "IDENT" and self.tok.value.lower() == "count":
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "LPAREN":
                self.i += 2
                if self.tok.kind == "RPAREN":
                    self.i += 1
                    return [], None, True
                counted = self.path()
                self.expect_kind("RPAREN")
                return [], counted, False
        fields = [self.path()]
        while self.tok.kind == "COMMA":
            self.i += 1
            fields.append(self.path())
        return fields, None, False

    def integer(self) -> int:
        token = self.expect_kind("NUMBER")
        if not token.value.isdigit():
            raise self.error(token)
        return int(token.value)

    def order_list(self) -> list[OrderItem]:
        items = []
        while True:
            path = self.path()
            descending = False
            if self.accept("desc"):
                descending = True
            else:
                self.accept("asc")
            nulls_first = not descending
            if self.accept("nulls"):
                if self.accept("first"):
                    nulls_first = True
                else:
                    self.expect("last")
                    nulls_first = False
            items.append(OrderItem(path, descending, nulls_first))
            if self.tok.kind != "COMMA":
                return items
            self.i += 1

    def condition(self) -> Node:
        first = self.unary()
        conj = self.tok.keyword()
        if conj not in ("and", "or"):
            return first
        children = [first]
        while self.tok.keyword() in ("and", "or"):
            if self.tok.keyword() != conj:
                raise self.error()  # SOQL needs parentheses to mix AND and OR
            self.i += 1
            children.append(self.unary())
        return Node(conj, children=children)

    def unary(self) -> Node:
        if self.accept("not"):
            return Node("not", children=[self.unary()])
        if self.tok.kind == "LPAREN":
            self.i += 1
            inner = self.condition()
            self.expect_kind("RPAREN")
            return inner
        return self.simple()

    def simple(self) -> Node:
        path = self.path()
        if self.tok.kind == "OP":
            op = self.advance().value
            return Node("cmp", path, "!=" if op == "<>" else op, [self.literal()])
        negate = self.accept("not")
        if self.accept("in"):
            self.expect_kind("LPAREN")
            if self.tok.keyword() == "select":
                raise self.error()  # semi-joins are not part of the sandbox's SOQL
            values = [self.literal()]
            while self.tok.kind == "COMMA":
                self.i += 1
                values.append(self.literal())
            self.expect_kind("RPAREN")
            return Node("in", path, values=values, negate=negate)
        if not negate and self.accept("like"):
            token = self.expect_kind("STRING")
            return Node("like", path, values=[Literal("STRING", token.value, token.pos)])
        raise self.error()

    def literal(self) -> Literal:
        token = self.advance()
        if token.kind in ("STRING", "NUMBER", "DATE", "DATETIME"):
            return Literal(token.kind, token.value, token.pos)
        word = token.keyword()
        if word in ("true", "false"):
            return Literal("BOOL", word == "true", token.pos)
        if word == "null":
            return Literal("NULL", None, token.pos)
        if token.kind == "IDENT":
            upper = token.value.upper()
            if upper in DATE_LITERALS:
                return Literal("DATE_LITERAL", upper, token.pos)
            if upper in N_DATE_LITERALS:
                self.expect_kind("COLON")
                return Literal("DATE_LITERAL", upper, token.pos, self.integer())
        raise self.error(token)


def parse(text: str) -> Parsed:
    return Parser(text).parse()


# ---- compilation -------------------------------------------------------------------------------


class Resolver(Protocol):
    """What compiled queries need from the store: related records, the clock, the user."""

    def lookup(self, sobject: str, record_id: str | None) -> Record | None: ...

    def now_datetime(self) -> datetime: ...


@dataclass
class Hop:
    relationship: str  # e.g. "Account"
    foreign_key: str  # e.g. "AccountId"
    target: str  # e.g. "Account"


@dataclass
class Column:
    header: str  # "Email", "Account.Name"
    hops: list[Hop]
    field: Field
    getter: Getter


@dataclass
class SortKey:
    getter: Getter
    field: Field
    descending: bool
    nulls_first: bool


@dataclass
class Compiled:
    text: str
    sobject: SObject
    columns: list[Column]
    count_only: bool
    count_column: Column | None
    scope: str | None
    predicate: Predicate | None  # the whole WHERE
    residual: Predicate | None  # WHERE without the SystemModstamp range below
    modstamp_range: tuple[float | None, bool, float | None, bool] | None  # lo, lo_incl, hi, ...
    order: list[SortKey]
    modstamp_order: str | None  # "asc" / "desc" when ORDER BY is served by the modstamp index
    limit: int | None
    offset: int | None


def compile_query(text: str, resolver: Resolver) -> Compiled:
    parsed = parse(text)
    sobject = get_object(parsed.sobject.text)
    if sobject is None:
        raise SoqlError(
            "INVALID_TYPE",
            located(text, parsed.sobject.pos, BAD_TYPE.format(name=parsed.sobject.text)),
        )
    c = _Compiler(parsed, sobject, resolver)
    return c.compile()


class _Compiler:
    def __init__(self, parsed: Parsed, sobject: SObject, resolver: Resolver) -> None:
        self.parsed = parsed
        self.text = parsed.text
        self.sobject = sobject
        self.resolver = resolver
        now = resolver.now_datetime().astimezone(UTC)
        self.today = now.date()

    def compile(self) -> Compiled:
        p = self.parsed
        columns: list[Column] = []
        seen: set[str] = set()
        for path in p.fields:
            column = self.column(path)
            if column.header.lower() in seen:
                raise SoqlError(
                    "MALFORMED_QUERY",
                    located(self.text, path.pos, f"duplicate field selected: {column.header}"),
                )
            seen.add(column.header.lower())
            columns.append(column)
        count_column = self.column(p.count) if p.count else None
        predicate = residual = None
        modstamp_range = None
        if p.where is not None:
            predicate = self.node(p.where)
            modstamp_range, rest = self.split_modstamp(p.where)
            residual = self.node(rest) if rest is not None else None
            if modstamp_range is None:
                residual = predicate
        order = [self.sort_key(item) for item in p.order]
        if p.offset is not None and p.offset > MAX_OFFSET:
            raise SoqlError("NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
        return Compiled(
            text=self.text,
            sobject=self.sobject,
            columns=columns,
            count_only=p.count_only,
            count_column=count_column,
            scope=p.scope,
            predicate=predicate,
            residual=residual,
            modstamp_range=modstamp_range,
            order=order,
            modstamp_order=self.modstamp_order(p.order),
            limit=p.limit,
            offset=p.offset,
        )

    # -- fields --

    def column(self, path: Path) -> Column:
        parts = path.text.split(".")
        obj = self.sobject
        hops: list[Hop] = []
        names: list[str] = []
        for i, part in enumerate(parts[:-1]):
            if i == 0 and part.lower() == obj.name.lower() and len(parts) == 2:
                continue  # "Contact.Email" in a query on Contact
            rel = obj.relationships.get(part.lower())
            if rel is None:
                raise SoqlError(
                    "INVALID_FIELD",
                    located(self.text, path.pos, BAD_RELATIONSHIP.format(name=part)),
                )
            target = get_object(rel.reference_to[0])
            if target is None:  # e.g. RecordType: not queryable in the sandbox
                raise SoqlError(
                    "INVALID_FIELD",
                    located(self.text, path.pos, BAD_RELATIONSHIP.format(name=part)),
                )
            assert rel.relationship_name is not None
            hops.append(Hop(rel.relationship_name, rel.name, target.name))
            names.append(rel.relationship_name)
            obj = target
        fdef = obj.field(parts[-1])
        if fdef is None:
            raise SoqlError(
                "INVALID_FIELD",
                located(
                    self.text, path.pos, NO_SUCH_COLUMN.format(name=parts[-1], entity=obj.name)
                ),
            )
        names.append(fdef.name)
        return Column(".".join(names), hops, fdef, self.getter(hops, fdef.name))

    def getter(self, hops: list[Hop], name: str) -> Getter:
        if not hops:
            return lambda r: r.get(name)
        lookup = self.resolver.lookup

        def get(r: Record) -> Any:
            cur: Record | None = r
            for hop in hops:
                assert cur is not None
                cur = lookup(hop.target, cur.get(hop.foreign_key))
                if cur is None:
                    return None
            assert cur is not None
            return cur.get(name)

        return get

    # -- WHERE --

    def node(self, node: Node) -> Predicate:
        if node.kind in ("and", "or"):
            parts = [self.node(child) for child in node.children]
            if node.kind == "and":
                return lambda r: all(p(r) for p in parts)
            return lambda r: any(p(r) for p in parts)
        if node.kind == "not":
            inner = self.node(node.children[0])
            return lambda r: not inner(r)
        assert node.path is not None
        column = self.column(node.path)
        if node.kind == "like":
            return self.like(column, node)
        if node.kind == "in":
            return self.in_list(column, node)
        return self.compare(column, node.op, node.values[0])

    def filter_type_error(self, f: Field, lit: Literal) -> SoqlError:
        if f.is_string:
            text = f"value of filter criterion for field '{f.name}' must be of type string and"
            text += " should be enclosed in quotes"
        else:
            type_name = TYPE_NAMES.get(f.type, f.type)
            text = f"value of filter criterion for field '{f.name}' must be of type {type_name}"
            text += " and should not be enclosed in quotes"
        return SoqlError("INVALID_FIELD", located(self.text, lit.pos, text))

    def value(self, f: Field, lit: Literal) -> Any:
        """The literal as the record stores this field's values (type-checked)."""
        if lit.kind == "NULL":
            return None
        if f.is_string:
            if lit.kind != "STRING":
                raise self.filter_type_error(f, lit)
            if f.type in ("id", "reference"):
                normal = ids.normalize(lit.value)
                if normal is None:
                    raise SoqlError(
                        "INVALID_QUERY_FILTER_OPERATOR",
                        located(self.text, lit.pos, f"invalid ID field: {lit.value}"),
                    )
                return normal
            return _UNESCAPE.sub(r"\1", lit.value).casefold()
        if f.type == "boolean":
            if lit.kind != "BOOL":
                raise self.filter_type_error(f, lit)
            return lit.value
        if f.type == "datetime":
            if lit.kind != "DATETIME":
                raise self.filter_type_error(f, lit)
            return parse_datetime(lit.value)
        if f.type == "date":
            if lit.kind != "DATE":
                raise self.filter_type_error(f, lit)
            return lit.value
        if lit.kind != "NUMBER":
            raise self.filter_type_error(f, lit)
        return float(lit.value) if "." in lit.value else int(lit.value)

    def date_range(self, f: Field, lit: Literal) -> tuple[Any, Any]:
        """[lo, hi) of a date literal, in the field's stored form."""
        if f.type not in ("datetime", "date"):
            raise self.filter_type_error(f, lit)
        today = self.today
        one = timedelta(days=1)
        start, end = {
            "TODAY": (today, today + one),
            "YESTERDAY": (today - one, today),
            "TOMORROW": (today + one, today + 2 * one),
            "LAST_N_DAYS": (today - lit.n * one, today + one),
            "NEXT_N_DAYS": (today + one, today + (lit.n + 1) * one),
            "N_DAYS_AGO": (today - lit.n * one, today - (lit.n - 1) * one),
        }[lit.value]
        if f.type == "date":
            return start.isoformat(), end.isoformat()
        return _day_seconds(start), _day_seconds(end)

    def compare(self, column: Column, op: str, lit: Literal) -> Predicate:
        f, get = column.field, column.getter
        if lit.kind == "DATE_LITERAL":
            lo, hi = self.date_range(f, lit)
            return _range_predicate(get, op, lo, hi)
        v = self.value(f, lit)
        if v is None:
            if op == "=":
                return lambda r: get(r) is None
            if op == "!=":
                return lambda r: get(r) is not None
            return lambda r: False
        if f.is_string and f.type not in ("id", "reference"):
            base = get

            def get(r: Record) -> Any:
                x = base(r)
                return x.casefold() if x is not None else None

        return _op_predicate(get, op, v)

    def in_list(self, column: Column, node: Node) -> Predicate:
        f, get = column.field, column.getter
        values = [self.value(f, lit) for lit in node.values if lit.kind != "DATE_LITERAL"]
        if len(values) != len(node.values):
            raise self.filter_type_error(f, node.values[0])
        with_null = None in values
        wanted = frozenset(v for v in values if v is not None)
        fold = f.is_string and f.type not in ("id", "reference")

        def member(r: Record) -> bool:
            x = get(r)
            if x is None:
                return with_null
            return (x.casefold() if fold else x) in wanted

        if node.negate:
            return lambda r: not member(r)
        return member

    def like(self, column: Column, node: Node) -> Predicate:
        f, get = column.field, column.getter
        lit = node.values[0]
        if not f.is_string or f.type in ("id", "reference"):
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                located(
                    self.text,
                    node.path.pos if node.path else 0,
                    f"invalid operator on {f.type} field",
                ),
            )
        regex = like_regex(lit.value)
        return lambda r: (x := get(r)) is not None and regex.fullmatch(x) is not None

    # -- SystemModstamp index --

    def split_modstamp(
        self, where: Node
    ) -> tuple[tuple[float | None, bool, float | None, bool] | None, Node | None]:
        conjuncts = where.children if where.kind == "and" else [where]
        lo: float | None = None
        hi: float | None = None
        lo_incl = hi_incl = True
        rest: list[Node] = []
        for node in conjuncts:
            if (
                node.kind == "cmp"
                and node.path is not None
                and node.path.text.lower()
                in ("systemmodstamp", f"{self.sobject.name.lower()}.systemmodstamp")
                and node.op in (">", ">=", "<", "<=")
                and node.values[0].kind == "DATETIME"
            ):
                v = parse_datetime(node.values[0].value)
                if node.op in (">", ">="):
                    incl = node.op == ">="
                    if lo is None or v > lo or (v == lo and not incl):
                        lo, lo_incl = v, incl
                else:
                    incl = node.op == "<="
                    if hi is None or v < hi or (v == hi and not incl):
                        hi, hi_incl = v, incl
            else:
                rest.append(node)
        if lo is None and hi is None:
            return None, where
        if not rest:
            return (lo, lo_incl, hi, hi_incl), None
        return (lo, lo_incl, hi, hi_incl), rest[0] if len(rest) == 1 else Node("and", children=rest)

    def modstamp_order(self, order: list[OrderItem]) -> str | None:
        if not order or order[0].path.text.lower() != "systemmodstamp":
            return None
        first = order[0]
        if len(order) > 2:
            return None
        if len(order) == 2 and (
            order[1].path.text.lower() != "id" or order[1].descending != first.descending
        ):
            return None
        return "desc" if first.descending else "asc"

    # -- ORDER BY --

    def sort_key(self, item: OrderItem) -> SortKey:
        column = self.column(item.path)
        if column.field.type == "textarea" and column.field.length > 255:
            raise SoqlError(
                "INVALID_FIELD",
                located(
                    self.text,
                    item.path.pos,
                    f"field '{column.field.name}' can not be sorted in a query call",
                ),
            )
        return SortKey(column.getter, column.field, item.descending, item.nulls_first)


def _day_seconds(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _op_predicate(get: Getter, op: str, v: Any) -> Predicate:
    if op == "=":
        return lambda r: get(r) == v
    if op == "!=":
        return lambda r: get(r) != v
    if op == "<":
        return lambda r: (x := get(r)) is not None and x < v
    if op == "<=":
        return lambda r: (x := get(r)) is not None and x <= v
    if op == ">":
        return lambda r: (x := get(r)) is not None and x > v
    return lambda r: (x := get(r)) is not None and x >= v


def _range_predicate(get: Getter, op: str, lo: Any, hi: Any) -> Predicate:
    """A comparison with a date literal, which stands for the range [lo, hi)."""
    if op == "=":
        return lambda r: (x := get(r)) is not None and lo <= x < hi
    if op == "!=":
        return lambda r: (x := get(r)) is None or not lo <= x < hi
    if op == "<":
        return lambda r: (x := get(r)) is not None and x < lo
    if op == "<=":
        return lambda r: (x := get(r)) is not None and x < hi
    if op == ">":
        return lambda r: (x := get(r)) is not None and x >= hi
    return lambda r: (x := get(r)) is not None and x >= lo


def like_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_\\":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def parse_datetime(text: str) -> float:
    """A SOQL / REST datetime (``Z``, ``+0000`` or ``+00:00``) as epoch seconds."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", t):
        t = t[:-2] + ":" + t[-2:]
    value = datetime.fromisoformat(t)
    if value.tzinfo is None:
        raise ValueError(f"datetime without a time zone: {text}")
    return value.timestamp()
