"""ICE configuration reaches clients and the server's own candidates."""

from __future__ import annotations

import re

import pytest

from config import load_settings
from tests.clients import HearingClient
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ICE = [{"urls": ["stun:stun.court.example:3478"]},
       {"urls": ["turn:turn.court.example:3478?transport=udp"], "username": "court",
        "credential": "secret"}]


@pytest.fixture
def settings(tmp_path, database_url):
    return load_settings(
        environ={},
        data_dir=tmp_path / "var",
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        ice_host_addresses=["127.0.0.1"],
        udp_port_range=(42000, 42049),
        heartbeat_seconds=1.0,
        ice_servers=ICE,
        whisper_model="tiny.en",
    )


async def test_ice_servers_and_port_range(hearing, participants, monkeypatch):
    # The server's own peers would contact the configured STUN/TURN hosts, which do not exist
    # here; the test checks the configuration they are given instead.
    import aiortc

    seen = []
    original = aiortc.RTCPeerConnection.__init__

    def spy(self, configuration=None):
        seen.append(configuration)
        original(self, None)

    monkeypatch.setattr(aiortc.RTCPeerConnection, "__init__", spy)
    judge = HearingClient(hearing.base_url, "judge")
    participants.append(judge)
    await judge.join(hearing.tokens["judge"])
    config = await judge.next_message("config")
    assert config["ice_servers"] == ICE
    offer = await judge.next_message("offer")
    order = [m["type"] for m in judge.messages]
    # The client needs its ICE servers before it builds the peer connection for the offer.
    assert order.index("welcome") < order.index("config") < order.index("offer")
    ports = [int(p) for p in re.findall(r"udp \d+ 127\.0\.0\.1 (\d+) typ host", offer["sdp"])]
    assert ports and all(42000 <= p <= 42049 for p in ports)
    server_config = next(c for c in seen if c is not None and c.iceServers)
    assert [s.urls for s in server_config.iceServers] == [s["urls"] for s in ICE]
    assert server_config.iceServers[1].credential == "secret"
