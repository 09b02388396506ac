"""Property tests of the sandbox's SOQL: any text is either a query or a Salesforce error, escaped
literals round-trip, and random WHERE trees select what a reference evaluator selects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simple_salesforce.format import format_soql

from contactsync_sandbox.core import VirtualClock
from contactsync_sandbox.salesforce import soql
from contactsync_sandbox.salesforce.models import Org, WriteContext

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FAST = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NAMES = ["Åkesson", "smith", "Smith", "O'Connor", "García", "de la Peña", "Li"]
EMAILS = [None, "a@example.com", "B@EXAMPLE.COM", "li@example.cn"]


@pytest.fixture(scope="module")
def org() -> Org:
    org = Org(VirtualClock(NOW), seed=1)
    ctx = WriteContext(org.credentials.admin.id, system=True)
    base = int(NOW.timestamp())
    for i, name in enumerate(NAMES * 2):
        org.create(
            "Contact",
            {
                "LastName": name,
                "Email": EMAILS[i % len(EMAILS)],
                "DoNotCall": i % 3 == 0,
                "CreatedDate": datetime.fromtimestamp(base - i * 3600, UTC).isoformat(),
            },
            ctx,
        )
    return org


def run(org: Org, text: str) -> list[str]:
    q = org.compile(text)
    return org.select_ids(q, False, org.credentials.admin.id)


# ---- any text: a query or a Salesforce error, never a crash --------------------------------------

fragments = st.sampled_from(
    [
        "SELECT",
        "Id",
        ",",
        "Email",
        "FROM",
        "Contact",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "(",
        ")",
        "=",
        "!=",
        "<",
        "LIKE",
        "IN",
        "'x'",
        "'it\\'s'",
        "null",
        "true",
        "2024-01-01T00:00:00Z",
        "TODAY",
        "LAST_N_DAYS:3",
        "ORDER",
        "BY",
        "DESC",
        "NULLS",
        "LAST",
        "LIMIT",
        "5",
        "COUNT()",
        "Account.Name",
        "'\\q'",
        "@",
    ]
)


@FAST
@given(st.lists(fragments, max_size=14).map(" ".join) | st.text(max_size=40))
def test_any_text_is_a_query_or_a_salesforce_error(org: Org, text: str) -> None:
    codes = {
        "MALFORMED_QUERY",
        "INVALID_FIELD",
        "INVALID_TYPE",
        "INVALID_QUERY_FILTER_OPERATOR",
        "NUMBER_OUTSIDE_VALID_RANGE",
    }
    refused: soql.SoqlError | None = None
    try:
        soql.compile_query(text, org)
    except soql.SoqlError as exc:
        refused = exc
    if refused is not None:
        assert refused.code in codes
        assert refused.message


# ---- escaped literals round-trip ----------------------------------------------------------

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("'\"\\%_\n\t"),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s and s)


@FAST
@given(name=names)
def test_format_soql_literals_round_trip(org: Org, name: str) -> None:
    ctx = WriteContext(org.credentials.admin.id)
    rid = org.create("Contact", {"LastName": name}, ctx)
    try:
        assert rid in run(org, format_soql("SELECT Id FROM Contact WHERE LastName = {}", name))
        like = format_soql("SELECT Id FROM Contact WHERE LastName LIKE '{:like}'", name)
        assert rid in run(org, like)
        found = run(org, format_soql("SELECT Id FROM Contact WHERE LastName IN {}", [name, "zz"]))
        assert rid in found
    finally:
        org.delete("Contact", rid, ctx)


# ---- random WHERE trees against a reference evaluator ---------------------------------------

Atom = tuple[str, str, Any]


def _atoms() -> st.SearchStrategy[Atom]:
    string_atoms = st.tuples(
        st.sampled_from(["LastName", "Email"]),
        st.sampled_from(["=", "!=", "<", ">="]),
        st.sampled_from([*NAMES, *[e for e in EMAILS if e], None]),
    )
    like_atoms = st.tuples(
        st.just("LastName"), st.just("LIKE"), st.sampled_from(["s%", "%a%", "_i"])
    )
    bool_atoms = st.tuples(st.just("DoNotCall"), st.sampled_from(["=", "!="]), st.booleans())
    return string_atoms | like_atoms | bool_atoms


def _trees(depth: int = 3) -> st.SearchStrategy[Any]:
    return st.recursive(
        _atoms(),
        lambda inner: (
            st.tuples(st.sampled_from(["AND", "OR"]), st.lists(inner, min_size=2, max_size=3))
            | st.tuples(st.just("NOT"), inner)
        ),
        max_leaves=6,
    )


def to_soql(tree: Any) -> str:
    if tree[0] in ("AND", "OR") and isinstance(tree[1], list):
        return "(" + f" {tree[0]} ".join(to_soql(t) for t in tree[1]) + ")"
    if tree[0] == "NOT" and isinstance(tree[1], tuple):
        return f"(NOT {to_soql(tree[1])})"
    field, op, value = tree
    return f"{field} {op} {format_soql('{}', value)}"


def reference(tree: Any, rec: dict[str, Any]) -> bool:
    """SOQL semantics: case-insensitive text, != keeps nulls, ordering drops nulls."""
    if tree[0] in ("AND", "OR") and isinstance(tree[1], list):
        results = [reference(t, rec) for t in tree[1]]
        return all(results) if tree[0] == "AND" else any(results)
    if tree[0] == "NOT" and isinstance(tree[1], tuple):
        return not reference(tree[1], rec)
    field, op, value = tree
    x = rec.get(field)
    if op == "LIKE":
        import re

        pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value)
        return x is not None and re.fullmatch(pattern, x, re.IGNORECASE) is not None
    if isinstance(x, str):
        x = x.casefold()
    if isinstance(value, str):
        value = value.casefold()
    if value is None:
        return (x is None) if op == "=" else (x is not None) if op == "!=" else False
    if op == "=":
        return x == value
    if op == "!=":
        return x != value
    if x is None:
        return False
    return x < value if op == "<" else x >= value


@FAST
@given(tree=_trees())
def test_where_trees_match_the_reference(org: Org, tree: Any) -> None:
    text = f"SELECT Id FROM Contact WHERE {to_soql(tree)}"
    table = org.tables["Contact"]
    expected = [
        rid for rid, rec in table.records.items() if not rec["IsDeleted"] and reference(tree, rec)
    ]
    assert run(org, text) == expected, text
