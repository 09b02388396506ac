"""Hypothesis stateful test across all four systems: random sequences of edits on every side
and in the hub, interleaved with sync rounds, always converge, and once converged an idle
round writes nothing anywhere and every system agrees with the hub."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from contactsync.app.gallery import Actor
from contactsync.domain import HubContact, Provider
from tests.support.world import ALL, World

NAMES = st.sampled_from(["Beesly", "Halpert", "Schrute", "Martin", "Vance", "Núñez", "O'Connor"])
STREAMS = {Provider.SALESFORCE: "Contact", Provider.GOOGLE: "person", Provider.MICROSOFT: "contact",
           Provider.AIRCALL: "contact"}  # fmt: skip


class Convergence(RuleBasedStateMachine):
    world: World

    @initialize()
    def build(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="convergence-"))
        self.world = World.build(self.root, ALL)
        for provider in ALL:
            self.world.seed(provider, 5, overlap=0.4)
        self.world.converge(6)

    def teardown(self) -> None:
        if hasattr(self, "world"):
            self.world.store.close()
            shutil.rmtree(self.root, ignore_errors=True)

    def _linked(self, provider: Provider, index: int) -> tuple[str, str] | None:
        links = sorted(
            (lk for lk in self.world.links(provider) if not lk.restore and not lk.pending_create),
            key=lambda lk: lk.remote_id,
        )
        if not links:
            return None
        link = links[index % len(links)]
        return link.remote_id, link.object_type

    @rule(provider=st.sampled_from(ALL), index=st.integers(0, 50), name=NAMES)
    def edit_in_a_provider(self, provider: Provider, index: int, name: str) -> None:
        target = self._linked(provider, index)
        if target is not None:
            self.world.clock.advance(7)
            self.world.user_edit(provider, target[0], target[1], family_name=name)

    @rule(index=st.integers(0, 50), name=NAMES)
    def edit_in_the_hub(self, index: int, name: str) -> None:
        contacts = sorted((c for c in self.world.contacts() if not c.personal), key=lambda c: c.id)
        if contacts:
            contact = contacts[index % len(contacts)]
            self.world.clock.advance(7)
            self.world.gallery().update(
                Actor.of(self.world.admin), contact.id, {"family_name": name}, contact.version
            )

    @rule()
    def sync_round(self) -> None:
        self.world.clock.advance(30)
        self.world.sync()

    @precondition(lambda self: hasattr(self, "world"))
    @invariant()
    def converges_and_agrees(self) -> None:
        # Whatever happened so far: a few rounds settle it, then an idle round is idle.
        self.world.converge(6)
        idle = self.world.sync()
        assert idle.remote_writes == 0
        assert idle.hub_writes == 0
        for account, counts in self.world.service.reconcile().items():
            assert (counts["diverged"], counts["missing"], counts["unpushed"]) == (0, 0, 0), (
                account,
                counts,
            )
        for contact in self.world.store.scan(HubContact, self.world.org_id):
            assert contact.family_name or contact.emails or contact.phones or contact.company


Convergence.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestConvergence = Convergence.TestCase
