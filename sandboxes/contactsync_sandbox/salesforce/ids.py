"""Salesforce record ids: 15 case-sensitive characters (a 3-character key prefix naming the object,
then the instance and a base-62 counter) plus a 3-character case-safe suffix that encodes which of
the 15 are upper case, so that the 18-character form survives case-insensitive systems."""

from __future__ import annotations

import re

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID15 = re.compile(r"^[a-zA-Z0-9]{15}$")
_ID18 = re.compile(r"^[a-zA-Z0-9]{18}$")
POD = "5g0"  # instance and reserved characters: every id of this org shares them


def suffix(id15: str) -> str:
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def make_id(prefix: str, number: int) -> str:
    """The 18-character id of the ``number``-th record with this key prefix (base-62, padded, so
    that ids sort in creation order)."""
    digits = []
    n = number
    for _ in range(9):
        n, r = divmod(n, 62)
        digits.append(BASE62[r])
    id15 = prefix + POD + "".join(reversed(digits))
    return id15 + suffix(id15)


def normalize(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None if it is not an id."""
    if _ID15.match(value):
        return value + suffix(value)
    if _ID18.match(value):
        id15 = value[:15]
        if suffix(id15).lower() != value[15:].lower():
            return None
        return id15 + suffix(id15)
    return None


class IdSequence:
    """Counters per key prefix; ``state`` round-trips through JSON."""

    def __init__(self, start: int = 1) -> None:
        self.start = start
        self.counters: dict[str, int] = {}

    def next(self, prefix: str) -> str:
        n = self.counters.get(prefix, self.start)
        self.counters[prefix] = n + 1
        return make_id(prefix, n)

    def reserve(self, prefix: str, count: int) -> list[str]:
        n = self.counters.get(prefix, self.start)
        self.counters[prefix] = n + count
        return [make_id(prefix, n + i) for i in range(count)]
