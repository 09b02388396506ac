"""The slice of OData that Graph's Outlook contact endpoints accept: ``$select``, ``$top``,
``$skip``, ``$count``, ``$orderby`` and the ``$filter`` forms listed in ``parse_filter``.

Anything else in ``$filter`` is refused with Outlook's ``ErrorInvalidUrlQueryFilter``, as Graph
refuses filters the mailbox store cannot evaluate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contactsync_sandbox.microsoft import exceptions as err

Predicate = Callable[[Mapping[str, Any]], bool]

# String properties of a contact that $filter and $orderby may name.
STRING_PROPERTIES = frozenset(
    {
        "displayName",
        "givenName",
        "middleName",
        "surname",
        "nickName",
        "companyName",
        "department",
        "jobTitle",
        "mobilePhone",
        "fileAs",
        "personalNotes",
    }
)
DATE_PROPERTIES = frozenset({"createdDateTime", "lastModifiedDateTime"})
_COMPARISONS: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
_STRING = r"'((?:[^']|'')*)'"
_EMAIL_ANY = re.compile(
    rf"^emailAddresses/any\(\s*(\w+)\s*:\s*\1/address\s+eq\s+{_STRING}\s*\)$", re.IGNORECASE
)
_CATEGORY_ANY = re.compile(
    rf"^categories/any\(\s*(\w+)\s*:\s*\1\s+eq\s+{_STRING}\s*\)$", re.IGNORECASE
)
_STARTSWITH = re.compile(rf"^startswith\(\s*(\w+)\s*,\s*{_STRING}\s*\)$", re.IGNORECASE)
_COMPARE_STRING = re.compile(rf"^(\w+)\s+(eq|ne)\s+{_STRING}$", re.IGNORECASE)
_COMPARE_DATE = re.compile(
    r"^(\w+)\s+(eq|ne|gt|ge|lt|le)\s+(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))$",
    re.IGNORECASE,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Filter:
    """A parsed ``$filter``: a predicate over a contact's properties, plus the email address it
    pins (so the store can answer from its address index instead of scanning)."""

    text: str
    predicate: Predicate
    email: str | None = None


def _unquote(raw: str) -> str:
    return raw.replace("''", "'")


def _split_and(text: str) -> list[str]:
    """Splits on ``and`` outside string literals."""
    parts: list[str] = []
    start = 0
    in_string = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            in_string = not in_string
        elif not in_string and (match := _AND.match(text, i)):
            parts.append(text[start:i])
            start = i = match.end()
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _to_instant(text: str) -> str:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _clause(text: str) -> tuple[Predicate, str | None]:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if match := _EMAIL_ANY.match(text):
        wanted = _unquote(match.group(2)).lower()

        def has_email(c: Mapping[str, Any]) -> bool:
            return any((e.get("address") or "").lower() == wanted for e in c["emailAddresses"])

        return has_email, wanted
    if match := _CATEGORY_ANY.match(text):
        category = _unquote(match.group(2)).lower()
        return (lambda c: any(x.lower() == category for x in c["categories"])), None
    if match := _STARTSWITH.match(text):
        prop, prefix = match.group(1), _unquote(match.group(2)).lower()
        if prop not in STRING_PROPERTIES:
            raise err.invalid_filter()
        return (lambda c: (c.get(prop) or "").lower().startswith(prefix)), None
    if match := _COMPARE_STRING.match(text):
        prop, op, value = match.group(1), match.group(2).lower(), _unquote(match.group(3)).lower()
        if prop not in STRING_PROPERTIES:
            raise err.invalid_filter()
        compare = _COMPARISONS[op]
        return (lambda c: compare((c.get(prop) or "").lower(), value)), None
    if match := _COMPARE_DATE.match(text):
        prop, op = match.group(1), match.group(2).lower()
        if prop not in DATE_PROPERTIES:
            raise err.invalid_filter()
        try:
            instant = _to_instant(match.group(3))
        except ValueError as exc:
            raise err.invalid_filter() from exc
        compare = _COMPARISONS[op]
        return (lambda c: compare(c[prop], instant)), None
    raise err.invalid_filter()


def parse_filter(text: str) -> Filter:
    """Supported: ``emailAddresses/any(a:a/address eq '...')``, ``categories/any(c:c eq '...')``,
    ``<string property> eq|ne '...'``, ``startswith(<string property>, '...')`` and
    ``createdDateTime|lastModifiedDateTime eq|ne|gt|ge|lt|le <instant>``, joined by ``and``.
    String comparisons are case-insensitive, as Exchange compares them."""
    clauses = [_clause(part) for part in _split_and(text)]
    predicates = [p for p, _ in clauses]
    email = next((e for _, e in clauses if e is not None), None)
    if len(predicates) == 1:
        return Filter(text, predicates[0], email)
    return Filter(text, lambda c: all(p(c) for p in predicates), email)


def parse_select(raw: str | None, allowed: frozenset[str], type_name: str) -> list[str] | None:
    if raw is None or not raw.strip():
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    lookup = {name.lower(): name for name in allowed}
    chosen: list[str] = []
    for name in names:
        canonical = lookup.get(name.lower())
        if canonical is None:
            raise err.unknown_select(name, type_name)
        chosen.append(canonical)
    return chosen


def parse_orderby(raw: str | None) -> tuple[str, bool] | None:
    """``$orderby=prop [asc|desc]`` on one string or date property; (property, descending)."""
    if raw is None or not raw.strip():
        return None
    parts = raw.strip().split()
    if len(parts) > 2 or "," in raw:
        raise err.invalid_query("Only one $orderby property is supported for contacts.")
    prop = parts[0]
    direction = parts[1].lower() if len(parts) == 2 else "asc"
    if prop not in STRING_PROPERTIES | DATE_PROPERTIES or direction not in ("asc", "desc"):
        raise err.invalid_query(f"The $orderby property '{raw}' is not supported.")
    return prop, direction == "desc"


def parse_int(raw: str | None, name: str, default: int, maximum: int | None = None) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise err.invalid_query(f"Invalid {name} value: '{raw}'.") from exc
    if value < 0 or (name == "$top" and value == 0):
        raise err.invalid_query(f"Invalid {name} value: '{raw}'.")
    if maximum is not None and value > maximum:
        raise err.invalid_query(f"The value of {name} must be between 1 and {maximum}.")
    return value
