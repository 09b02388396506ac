"""Companies (seed 000's accounts) as the Stream and Closest Connections see them: an Account
entity, found by id or by name, or made from the name its contacts carry (its id derives from
the normalised name, so making it twice makes it once)."""

from __future__ import annotations

import hashlib

from contactsync.app.gallery import Actor
from contactsync.domain.company import Account, company_key, company_key_loose
from contactsync.domain.errors import InvalidInput, NotFound, VersionConflict
from contactsync.sharing.stream import company_contacts
from contactsync.store.base import Store


def company_id_for(name: str) -> str:
    return "co-" + hashlib.sha256(company_key_loose(name).encode()).hexdigest()[:24]


def resolve_company(store: Store, actor: Actor, ref: str) -> Account:
    """The company with id ``ref``, or named ``ref`` (case, accents and legal form ignored):
    an existing one, else one made from the name when the caller sees contacts working there.
    NotFound otherwise."""
    ref = ref.strip()
    if not ref or len(ref) > 255:
        raise InvalidInput.one("company", "must be 1-255 characters")
    found = store.find(Account, actor.org_id, ref)
    if found is not None:
        return found
    for account in store.lookup(Account, actor.org_id, "name", company_key(ref), limit=5):
        return account
    key = company_key_loose(ref)
    if not key:
        raise NotFound("company", ref)
    made = store.find(Account, actor.org_id, company_id_for(ref))
    if made is not None:
        return made
    candidate = Account(org_id=actor.org_id, id=company_id_for(ref), name=ref)
    if not company_contacts(store, actor, candidate):
        raise NotFound("company", ref)
    try:
        return store.create(candidate)
    except VersionConflict:
        return store.get(Account, actor.org_id, candidate.id)
