"""The contact gallery through the API: list and search with paging, get with provenance and
links, history, update with the version guard, archive and unarchive, merge, suggestions,
personal contacts, and the Email Contact Sync toggle."""

from __future__ import annotations

from typing import Any

from contactsync.app.setup import Setup
from contactsync.domain.link import Link
from contactsync.domain.merge import MergeSuggestion
from tests.api.conftest import Client, Env

DWIGHT = {
    "given_name": "Dwight",
    "family_name": "Schrute",
    "emails": [{"address": "Dwight.Schrute@DunderMifflin.com", "label": "work"}],
    "phones": [{"raw": "(570) 555-0134"}],
    "company": "Dunder Mifflin",
}


def create(client: Client, **body: Any) -> dict[str, Any]:
    response = client.post("/contacts", json=body or DWIGHT)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_create_stores_e164_and_provenance(env: Env) -> None:
    contact = create(env.as_admin)
    assert contact["phones"][0]["e164"] == "+15705550134"
    assert contact["provenance"]["given_name"]["source"] == f"user:{env.admin.id}"
    assert contact["version"] == 1


def test_bad_input_names_the_field(env: Env) -> None:
    response = env.as_admin.post("/contacts", json={"given_name": "X", "phones": [{"raw": "12"}]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "phones.0"
    response = env.as_admin.post("/contacts", json={"given_name": "X", "colour": "red"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.colour"
    response = env.as_admin.post("/contacts", json={})
    assert response.status_code == 422
    response = env.as_admin.call(
        "POST", "/contacts", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert env.as_admin.get("/contacts").json()["items"] == []  # nothing half-written


def test_list_pages_and_search(env: Env) -> None:
    for i in range(5):
        create(
            env.as_admin,
            given_name=f"Person{i}",
            family_name="Paper",
            emails=[{"address": f"p{i}@paper.example"}],
        )
    seen: list[str] = []
    token = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if token:
            params["page_token"] = token
        page = env.as_rep.get("/contacts", params=params).json()
        seen += [c["id"] for c in page["items"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert len(set(seen)) == 5
    assert len(env.as_rep.get("/contacts", params={"q": "paper"}).json()["items"]) == 5
    found = env.as_rep.get("/contacts", params={"q": "P3@PAPER.example"}).json()["items"]
    assert [c["given_name"] for c in found] == ["Person3"]
    assert env.as_rep.get("/contacts", params={"limit": 0}).status_code == 422
    assert env.as_rep.get("/contacts", params={"page_token": "garbage!"}).status_code == 422


def test_search_by_phone_in_any_format(env: Env) -> None:
    create(env.as_admin)
    for query in ("570.555.0134", "+1 (570) 555 0134"):
        items = env.as_rep.get("/contacts", params={"q": query}).json()["items"]
        assert [c["given_name"] for c in items] == ["Dwight"]


def test_get_with_links_and_history(env: Env) -> None:
    contact = create(env.as_admin)
    env.store.create(
        Link(
            org_id=env.org.id,
            id="l-1",
            contact_id=contact["id"],
            account_id="acc-x",
            object_type="Contact",
            remote_id="003A",
            snapshot={"secret": "no"},
        )
    )
    detail = env.as_rep.get(f"/contacts/{contact['id']}").json()
    assert detail["contact"]["id"] == contact["id"]
    assert detail["links"] == [
        {
            "account_id": "acc-x",
            "object_type": "Contact",
            "remote_id": "003A",
            "remote_version": None,
            "pending_create": False,
            "last_synced_at": detail["links"][0]["last_synced_at"],
        }
    ]
    history = env.as_rep.get(f"/contacts/{contact['id']}/history").json()["items"]
    assert [h["action"] for h in history] == ["create"]


def test_update_is_version_guarded(env: Env) -> None:
    contact = create(env.as_admin)
    path = f"/contacts/{contact['id']}"
    updated = env.as_rep.patch(path, json={"version": 1, "title": "Assistant Regional Manager"})
    assert updated.status_code == 200
    assert updated.json()["provenance"]["title"]["source"] == f"user:{env.rep.id}"
    stale = env.as_admin.patch(path, json={"version": 1, "title": "Assistant to the RM"})
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    assert env.as_admin.get(path).json()["contact"]["title"] == "Assistant Regional Manager"
    assert env.as_admin.patch(path, json={"title": "no version"}).status_code == 422


def test_archive_and_unarchive_never_delete(env: Env) -> None:
    contact = create(env.as_admin)
    path = f"/contacts/{contact['id']}"
    assert env.as_rep.post(f"{path}/archive").json()["archived"] is True
    assert env.as_rep.get("/contacts").json()["items"] == []
    archived = env.as_rep.get("/contacts", params={"include_archived": "true"}).json()["items"]
    assert [c["id"] for c in archived] == [contact["id"]]
    assert env.as_rep.post(f"{path}/unarchive").json()["archived"] is False


def test_personal_contacts_stay_personal(env: Env) -> None:
    roy = create(env.as_rep, given_name="Roy", family_name="Anderson", visibility="personal")
    assert roy["owner_user_id"] == env.rep.id
    assert env.as_admin.get(f"/contacts/{roy['id']}").status_code == 404  # not even admins
    assert (
        env.as_rep.get("/contacts", params={"personal": "true"}).json()["items"][0]["id"]
        == roy["id"]
    )


def test_merge_and_suggestions(env: Env) -> None:
    keep = create(env.as_admin)
    other = create(
        env.as_admin,
        given_name="Dwight",
        family_name="Schrute",
        emails=[{"address": "dwight@schrutefarms.example"}],
        title="Beet farmer",
    )
    suggestion = MergeSuggestion(
        org_id=env.org.id,
        id=MergeSuggestion.make_id(keep["id"], other["id"]),
        contact_ids=[keep["id"], other["id"]],
        score=0.9,
        reasons=["name"],
    )
    env.store.create(suggestion)
    listed = env.as_rep.get("/merge-suggestions").json()["items"]
    assert [s["id"] for s in listed] == [suggestion.id]
    merged = env.as_rep.post(f"/contacts/{keep['id']}/merge", json={"other_id": other["id"]})
    assert merged.status_code == 200
    assert {e["address"].lower() for e in merged.json()["emails"]} == {
        "dwight.schrute@dundermifflin.com",
        "dwight@schrutefarms.example",
    }
    assert env.as_rep.get(f"/contacts/{other['id']}").json()["contact"]["merged_into"] == keep["id"]
    assert env.as_rep.get("/merge-suggestions").json()["items"] == []
    assert (
        env.as_rep.post(f"/contacts/{keep['id']}/merge", json={"other_id": keep["id"]}).status_code
        == 422
    )


def test_dismiss_a_suggestion(env: Env) -> None:
    a, b = create(env.as_admin), create(env.as_admin, given_name="Dwight K.", family_name="Schrute")
    suggestion = env.store.create(
        MergeSuggestion(
            org_id=env.org.id,
            id=MergeSuggestion.make_id(a["id"], b["id"]),
            contact_ids=[a["id"], b["id"]],
            score=0.8,
        )
    )
    assert env.as_other.post(f"/merge-suggestions/{suggestion.id}/dismiss").status_code == 404
    dismissed = env.as_rep.post(f"/merge-suggestions/{suggestion.id}/dismiss")
    assert dismissed.json()["status"] == "dismissed"


def test_email_contact_sync_needs_two_users(env: Env) -> None:
    # The other organisation has one user: sharing is not available there (seed 000/002)
    refused = env.as_other.patch("/me/sharing", json={"email_contact_sync": True})
    assert refused.status_code == 409
    assert refused.json()["code"] == "sharing_needs_two_users"
    assert env.as_other.get("/me").json()["sharing"]["email_contact_sync"] is False
    # Dunder Mifflin has two: Pam turns it on; everything else stays off (off by default)
    on = env.as_rep.patch("/me/sharing", json={"email_contact_sync": True})
    assert on.status_code == 200
    assert on.json()["sharing"] == {
        "email_contact_sync": True,
        "share_activity": False,
        "auto_share_content": False,
    }
    assert env.as_rep.patch("/me/sharing", json={"email_contact_sync": False}).status_code == 200
    # Turning things off is always allowed
    Setup(env.store, env.secrets).add_user(env.other_org.id, "phyllis@vance.example")
    assert env.as_other.patch("/me/sharing", json={"share_activity": True}).status_code == 200
