"""Delta query state for contact folders, as Outlook keeps it.

A *chain* starts with a delta request without a token. Every page served mints the next
*generation* of the chain (a ``$skiptoken`` while the round has more pages, a ``$deltatoken`` at
its end), and only the last few generations are kept: an older link answers 410
``SyncStateNotFound`` ("The sync state generation is not found; generation=149;[highest=157]
[157][155][156]."), as does a token older than the configured lifetime. A *round* is the list of
ids one pass serves: the folder's members for the first pass, the folder's change log since the
previous round's watermark afterwards (O(changes)). Pages are rendered from the current state,
so an item changed during a round may show up twice, and a seeded random makes some pages empty
(with a nextLink) and some items repeat, as real Graph does.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from contactsync_sandbox.microsoft import exceptions as err
from contactsync_sandbox.microsoft.models import ContactFolder, Mailbox, derive
from contactsync_sandbox.microsoft.settings import Limits

MAX_TOKENS = 20_000


@dataclass
class Round:
    user_id: str
    folder_id: str
    select: list[str] | None
    ids: list[str]
    watermark: int  # the mailbox sequence the round's deltaLink resumes from


@dataclass
class SyncToken:
    chain: str
    generation: int
    user_id: str
    folder_id: str
    select: list[str] | None
    created_at: float
    round_id: str | None = None  # a $skiptoken: where in which round
    position: int = 0
    watermark: int = 0  # a $deltatoken: changes after this sequence


@dataclass
class DeltaPage:
    ids: list[str]
    token: str
    final: bool  # True: the token is a $deltatoken (deltaLink), else a $skiptoken (nextLink)


@dataclass
class DeltaStore:
    seed: int
    limits: Limits
    tokens: OrderedDict[str, SyncToken] = field(default_factory=OrderedDict)
    chains: dict[str, deque[str]] = field(default_factory=dict)  # chain -> its live tokens
    highest: dict[str, int] = field(default_factory=dict)
    rounds: dict[str, Round] = field(default_factory=dict)
    counter: int = 0

    # ---- tokens ------------------------------------------------------------------------------

    def _encode(self, chain: str, generation: int) -> str:
        tail = derive(self.seed, "delta", chain, generation, size=24)
        raw = chain.encode() + b"." + str(generation).encode() + b"." + tail
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode(token: str) -> tuple[str, int] | None:
        try:
            raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
            chain, generation, _ = raw.split(b".", 2)
            return chain.decode(), int(generation)
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None

    def _mint(self, state: SyncToken) -> str:
        generation = self.highest.get(state.chain, 0) + 1
        self.highest[state.chain] = generation
        state.generation = generation
        token = self._encode(state.chain, generation)
        self.tokens[token] = state
        live = self.chains.setdefault(state.chain, deque())
        live.append(token)
        while len(live) > max(1, self.limits.delta_generations_kept):
            self._forget(live.popleft())
        while len(self.tokens) > MAX_TOKENS:
            oldest = next(iter(self.tokens))
            self.chains[self.tokens[oldest].chain].remove(oldest)
            self._forget(oldest)
        return token

    def _forget(self, token: str) -> None:
        state = self.tokens.pop(token, None)
        if state is None or state.round_id is None:
            return
        still_used = any(
            self.tokens[t].round_id == state.round_id for t in self.chains.get(state.chain, ())
        )
        if not still_used:
            self.rounds.pop(state.round_id, None)

    def resolve(self, token: str, now: float) -> SyncToken:
        state = self.tokens.get(token)
        ttl = self.limits.delta_token_ttl_seconds
        if state is not None and ttl is not None and now - state.created_at > ttl:
            self.chains[state.chain].remove(token)
            self._forget(token)
            state = None
        if state is None:
            decoded = self._decode(token)
            if decoded is None or decoded[0] not in self.highest:
                raise err.sync_state_not_found("The sync state generation is not found.")
            chain, generation = decoded
            high = self.highest[chain]
            kept = "".join(f"[{self.tokens[t].generation}]" for t in self.chains.get(chain, ()))
            raise err.sync_state_not_found(
                "The sync state generation is not found; "
                f"generation={generation};[highest={high}]{kept}."
            )
        return state

    # ---- pages -------------------------------------------------------------------------------

    def page(
        self,
        mailbox: Mailbox,
        folder: ContactFolder,
        token: tuple[str, str] | None,  # ("skip" | "delta", value)
        select: list[str] | None,
        page_size: int,
        now: float,
    ) -> DeltaPage:
        if token is None:
            self.counter += 1
            chain = derive(self.seed, "chain", mailbox.user.id, self.counter, size=9).hex()
            state = SyncToken(chain, 0, mailbox.user.id, folder.id, select, now)
            round_id = self._start_round(state, list(folder.members), mailbox.seq)
            position = 0
        else:
            state = self.resolve(token[1], now)
            if state.folder_id != folder.id or state.user_id != mailbox.user.id:
                raise err.GraphError(
                    400, "SyncStateInvalid", "The sync state is not valid for this folder."
                )
            if state.round_id is None:
                round_id = self._start_round(
                    state, folder.changed_since(state.watermark), mailbox.seq
                )
                position = 0
            else:
                round_id, position = state.round_id, state.position
        current = self.rounds[round_id]
        rng = random.Random(f"{self.seed}:{state.chain}:{self.highest.get(state.chain, 0)}")
        remaining = len(current.ids) - position
        if remaining > 0 and rng.random() < self.limits.delta_empty_page_rate:
            ids: list[str] = []
        else:
            start = position
            if position > 0 and page_size >= 2 and rng.random() < self.limits.delta_repeat_rate:
                start -= 1  # the last item of the previous page comes again
            ids = current.ids[start : start + page_size]
            position = start + len(ids)
        nxt = SyncToken(state.chain, 0, state.user_id, state.folder_id, current.select, now)
        if position < len(current.ids):
            nxt.round_id, nxt.position = round_id, position
            return DeltaPage(ids, self._mint(nxt), final=False)
        nxt.watermark = current.watermark
        final = self._mint(nxt)
        if not any(self.tokens[t].round_id == round_id for t in self.chains[state.chain]):
            del self.rounds[round_id]  # no live link points into the finished round
        return DeltaPage(ids, final, final=True)

    def select_of(self, token: str) -> list[str] | None:
        state = self.tokens.get(token)
        return state.select if state else None

    def _start_round(self, state: SyncToken, ids: list[str], watermark: int) -> str:
        self.counter += 1
        round_id = f"r{self.counter}"
        self.rounds[round_id] = Round(state.user_id, state.folder_id, state.select, ids, watermark)
        return round_id

    # ---- persistence -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "counter": self.counter,
            "tokens": {t: asdict(s) for t, s in self.tokens.items()},
            "chains": {c: list(t) for c, t in self.chains.items()},
            "highest": dict(self.highest),
            "rounds": {r: asdict(v) for r, v in self.rounds.items()},
        }

    def load_json(self, raw: dict[str, Any]) -> None:
        self.counter = int(raw["counter"])
        self.tokens = OrderedDict((t, SyncToken(**s)) for t, s in raw["tokens"].items())
        self.chains = {c: deque(t) for c, t in raw["chains"].items()}
        self.highest = {c: int(g) for c, g in raw["highest"].items()}
        self.rounds = {r: Round(**v) for r, v in raw["rounds"].items()}

    def clear(self) -> None:
        self.tokens.clear()
        self.chains.clear()
        self.highest.clear()
        self.rounds.clear()
        self.counter = 0
