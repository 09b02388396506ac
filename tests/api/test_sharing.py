"""The sharing, Stream and Closest Connections routes: each as the owner, a teammate (the
admin), another organisation and nobody; bad input names its field and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from contactsync.app.gallery import Actor, Gallery
from contactsync.domain.accounts import ConnectedAccount, Provider
from contactsync.domain.activity import Activity
from contactsync.domain.sharing import SharingFlag
from contactsync.sharing.connections import pairs_of, recompute
from contactsync.sharing.service import SharingService
from tests import factories as f
from tests.api.conftest import Env


@pytest.fixture
def world(env: Env) -> dict[str, Any]:
    """Pam (the rep) emailed Zoë of Acme from her Gmail; Zoë awaits her decision."""
    store = env.store
    zoe = Gallery(store).create(
        Actor.of(env.rep),
        {"given_name": "Zoë", "company": "Acme Corp",
         "emails": [{"address": "zoe@acme.example"}, {"address": "zoe@home.example"}]},
    )  # fmt: skip
    account = store.create(
        ConnectedAccount(
            org_id=env.org.id,
            id="acc-gmail-pam",
            provider=Provider.GOOGLE,
            owner_user_id=env.rep.id,
            address="rep@example.com",
        )
    )
    emails = [
        store.create(
            f.activity(
                env.org.id,
                Activity.make_id(account.id, f"m-{i}"),
                account_id=account.id,
                owner_user_id=env.rep.id,
                contact_ids=[zoe.id],
                subject=subject,
                participants=["rep@example.com", "zoe@acme.example"],
                body=None,
            )
        )
        for i, subject in enumerate(["Order", "Confidential terms"])
    ]
    recompute(store, env.org.id, pairs_of(emails))
    SharingService(store).ensure_queued(env.rep, [zoe])
    return {"zoe": zoe.id, "order": emails[0].id, "confidential": emails[1].id}


def test_settings_need_two_users_and_name_bad_fields(env: Env) -> None:
    got = env.as_rep.get("/sharing/settings")
    assert got.status_code == 200
    assert got.json() == {
        "settings": {
            "email_contact_sync": False,
            "share_activity": False,
            "auto_share_content": False,
        },
        "organisation_users": 2,
        "available": True,
    }
    changed = env.as_rep.patch("/sharing/settings", {"share_activity": True})
    assert changed.json()["settings"]["share_activity"] is True
    bad = env.as_rep.patch("/sharing/settings", {"share_everything": True})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"].endswith("share_everything")
    # Bob's organisation has one user: nothing can be turned on
    alone = env.as_other.patch("/sharing/settings", {"share_activity": True})
    assert alone.status_code == 422
    assert alone.json()["errors"] == [
        {
            "field": "share_activity",
            "problem": "sharing exists only in organisations with at least two users",
        }
    ]
    assert env.anonymous.get("/sharing/settings").status_code == 401


def test_the_stream_as_each_viewer(env: Env, world: dict[str, Any]) -> None:
    zoe = world["zoe"]
    # Off by default: Michael sees nothing, Pam neither (in the Stream)
    assert env.as_admin.get(f"/contacts/{zoe}/stream").json() == {
        "items": [],
        "next_page_token": None,
    }
    env.as_rep.patch("/sharing/settings", {"share_activity": True})
    items = env.as_admin.get(f"/contacts/{zoe}/stream").json()["items"]
    assert [(i["level"], i["subject"]) for i in items] == [("metadata", None), ("metadata", None)]
    # Pam clicks All: the order's content is shared, the confidential one is not
    assert env.as_rep.post("/sharing/queue/all", {}).json() == {"decided": 1}
    levels = {
        i["id"]: i["level"] for i in env.as_admin.get(f"/contacts/{zoe}/stream").json()["items"]
    }
    assert levels == {world["order"]: "content", world["confidential"]: "metadata"}
    # Another organisation: not found, whatever the sharing
    assert env.as_other.get(f"/contacts/{zoe}/stream").status_code == 404
    assert env.as_other.get(f"/activities/{world['order']}").status_code == 404
    assert env.anonymous.get(f"/contacts/{zoe}/stream").status_code == 401
    # Pam shares the confidential one by itself
    own = env.as_rep.put(f"/activities/{world['confidential']}/sharing", {"shared": True}).json()
    assert own["sharing"] == {"event": True, "confidential": True, "content_shared": True}
    assert env.as_admin.get(f"/activities/{world['confidential']}").json()["level"] == "content"
    assert (
        env.as_admin.put(
            f"/activities/{world['confidential']}/sharing", {"shared": False}
        ).status_code
        == 404
    )


def test_access_requests(env: Env, world: dict[str, Any]) -> None:
    env.as_rep.patch("/sharing/settings", {"share_activity": True})
    asked = env.as_admin.post(f"/activities/{world['order']}/access-requests", {"note": "renewal"})
    assert asked.status_code == 201
    request = asked.json()
    assert request["status"] == "pending"
    listed = env.as_rep.get("/access-requests", params={"status": "pending"}).json()["items"]
    assert [r["id"] for r in listed] == [request["id"]]
    assert (
        env.as_admin.get("/access-requests", params={"role": "requester"}).json()["items"][0]["id"]
        == request["id"]
    )
    assert env.as_admin.post(f"/access-requests/{request['id']}/grant").status_code == 404
    assert env.as_rep.post(f"/access-requests/{request['id']}/grant").json()["status"] == "granted"
    assert env.as_admin.get(f"/activities/{world['order']}").json()["level"] == "content"
    assert (
        env.as_rep.post(f"/access-requests/{request['id']}/decline").json()["status"] == "declined"
    )
    assert env.as_admin.get(f"/activities/{world['order']}").json()["level"] == "metadata"
    too_long = env.as_admin.post(
        f"/activities/{world['order']}/access-requests", {"note": "x" * 501}
    )
    assert too_long.status_code == 422


def test_per_contact_and_bulk_decisions(env: Env, world: dict[str, Any]) -> None:
    zoe = world["zoe"]
    put = env.as_rep.put(
        f"/sharing/contacts/{zoe}", {"shared": True, "addresses": {"zoe@home.example": False}}
    )
    assert put.status_code == 200
    assert put.json() == {
        "contact_id": zoe,
        "shared": True,
        "addresses": [
            {"address": "zoe@acme.example", "shared": None},
            {"address": "zoe@home.example", "shared": False},
        ],
    }
    # A batch with one bad item is refused whole, naming it
    before = env.store.lookup(SharingFlag, env.org.id, "user", env.rep.id)
    decisions = [{"contact_id": zoe, "shared": False}, {"contact_id": "c-nope", "shared": True}]
    bad = env.as_rep.post("/sharing/decisions", {"decisions": decisions})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "decisions.1.contact_id"
    assert env.store.lookup(SharingFlag, env.org.id, "user", env.rep.id) == before
    assert env.as_rep.get("/sharing/queue").json() == {"items": []}


def test_closest_connections_and_companies(env: Env, world: dict[str, Any]) -> None:
    env.as_rep.patch("/sharing/settings", {"share_activity": True})
    connections = env.as_admin.get(f"/contacts/{world['zoe']}/closest-connections").json()
    assert [c["user_id"] for c in connections["items"]] == [env.rep.id]
    company = env.as_admin.get("/companies", params={"name": "ACME corporation"}).json()["company"]
    stream = env.as_admin.get(f"/companies/{company['id']}/stream").json()
    assert len(stream["items"]) == 2
    closest = env.as_admin.get(f"/companies/{company['id']}/closest-connections").json()
    assert [c["contact_id"] for c in closest["items"]] == [world["zoe"]]
    assert env.as_admin.get("/companies", params={"name": "Initech"}).status_code == 404
    assert env.as_other.get(f"/companies/{company['id']}/stream").status_code == 404


def test_removing_a_user_ends_their_access_at_once(env: Env, world: dict[str, Any]) -> None:
    env.as_rep.patch("/sharing/settings", {"share_activity": True})
    rep = env.as_rep  # a token minted before the removal
    assert rep.post(f"/users/{env.admin.id}/remove").status_code == 404  # not hers to remove
    removed = env.as_admin.post(f"/users/{env.rep.id}/remove")
    assert removed.status_code == 200
    assert removed.json()["user_id"] == env.rep.id
    assert rep.get("/sharing/settings").status_code == 403
    assert rep.get(f"/contacts/{world['zoe']}/stream").status_code == 403
    # What she shared stays: Michael still sees the order happened
    assert len(env.as_admin.get(f"/contacts/{world['zoe']}/stream").json()["items"]) == 2
    assert env.as_admin.post(f"/users/{env.admin.id}/remove").status_code == 422  # the last admin


def test_auto_share_turned_on_from_me_shares_the_waiting_contacts(
    env: Env, world: dict[str, Any]
) -> None:
    # Given Zoë waiting in Pam's approval queue
    assert [i["contact_id"] for i in env.as_rep.get("/sharing/queue").json()["items"]] == [
        world["zoe"]
    ]
    # When Pam turns auto-share on from her profile (PATCH /me/sharing, not /sharing/settings)
    on = env.as_rep.patch("/me/sharing", {"auto_share_content": True})
    assert on.status_code == 200
    assert on.json()["sharing"]["auto_share_content"] is True
    # Then the contacts she added are shared as if she had chosen All: the queue is empty
    assert env.as_rep.get("/sharing/queue").json() == {"items": []}
    shared = env.as_rep.get(f"/sharing/contacts/{world['zoe']}").json()
    assert shared["shared"] is True
