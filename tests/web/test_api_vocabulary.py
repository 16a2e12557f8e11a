"""The court's vocabulary (GET /api/v1/vocabulary): the words and sets the server decides by."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from courtrooms.lifecycle import TRANSITIONS, HearingAction
from courtrooms.models import HearingKind, HearingState, Location, Role
from tests.web.support import API, call

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_the_vocabulary_names_every_value_and_the_sets_the_server_uses(
    client: TestClient,
) -> None:
    reply = await call(client, "GET", f"{API}/vocabulary")  # no credential: every page needs it
    assert reply.status == 200, reply.text
    v = reply.json
    assert set(v["roles"]) == {r.value for r in Role}
    assert set(v["states"]) == {s.value for s in HearingState}
    assert set(v["kinds"]) == {k.value for k in HearingKind}
    assert set(v["locations"]) == {loc.value for loc in Location}
    assert all(isinstance(word, str) and word for table in ("roles", "states", "kinds",
                                                            "locations")
               for word in v[table].values())
    # The court lists the bench first, observers last.
    assert list(v["roles"])[:2] == ["judge", "clerk"] and list(v["roles"])[-1] == "observer"
    assert v["role_sets"]["controls_hearing"] == ["judge", "clerk"]
    assert v["role_sets"]["may_review"] == ["judge", "clerk"]
    assert set(v["role_sets"]["consulting"]) == {"defendant", "party"}
    assert v["role_sets"]["counsel"] == ["lawyer"]
    assert v["role_sets"]["id_digits"] == [
        "prosecutor", "lawyer", "defendant", "party", "witness", "interpreter"]
    assert v["role_sets"]["interpreted"] == ["defendant", "party", "witness"]
    assert v["state_sets"]["finished"] == ["closed", "cancelled"]
    assert v["state_sets"]["editable"] == ["scheduled", "open"]
    assert set(v["state_sets"]["live"]) | {"scheduled"} == set(v["state_sets"]["active"])
    for action in HearingAction:
        sources, _ = TRANSITIONS[action]
        assert set(v["commands"][action.value]) == {s.value for s in sources}, action


async def test_the_vocabulary_is_in_the_openapi_document(client: TestClient) -> None:
    doc = (await call(client, "GET", f"{API}/openapi.json")).json
    get = doc["paths"]["/api/v1/vocabulary"]["get"]
    assert "200" in get["responses"] and not get.get("security")
