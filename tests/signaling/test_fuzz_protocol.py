"""Hostile signaling messages over a real WebSocket to the real app, before and after joining.

Each gets an `error` whose code (and `field`) names the problem, or, for frames the WebSocket
protocol itself refuses, a documented close code. The connection then still answers a ping,
the seats of the hearing, the database and a second hearing on the same server are unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import json
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from config import Settings
from signaling import messages
from signaling.hub import Hub
from tests.clients import HearingClient
from tests.conftest import FakeClock
from tests.json_values import is_json
from tests.signaling.conftest import LiveHearing, schedule
from tests.web.support import DatabaseState, Snapshot
from web.keys import HUB

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# The server allows 20 messages a second (bursts of 60); staying under it keeps every refusal
# about the message itself, never `rate_limited`.
SEND_INTERVAL_S = 1 / 15
# The server waits 15 s for a join; a connection that has not joined is renewed before that.
JOIN_RENEW_S = 10.0
# Messages that would mean a hostile message changed the hearing for someone.
STATE_MESSAGES = {"participants", "consultations", "hearing", "admitted", "removed", "bye",
                  "exhibit"}

fuzz = hypothesis_settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- what each message type allows, read from its model ---------------------------------------

MODELS = {m.model_fields["type"].annotation.__args__[0]: m  # type: ignore[union-attr]
          for m in messages.Inbound.__subclasses__()}


@dataclass(frozen=True)
class FieldSpec:
    name: str  # as sent (the alias, e.g. `with`)
    json_types: frozenset[str]
    required: bool
    max_length: int | None = None
    min_length: int | None = None
    maximum: int | None = None
    minimum: int | None = None
    choices: tuple[Any, ...] = ()


@functools.cache
def field_specs(kind: str) -> tuple[FieldSpec, ...]:
    schema = MODELS[kind].model_json_schema(mode="validation", by_alias=True)
    required = set(schema.get("required", []))
    specs = []
    for name, prop in schema["properties"].items():
        if name == "type":
            continue
        leaves = prop.get("anyOf", [prop])
        main = next(leaf for leaf in leaves if leaf["type"] != "null")
        choices = tuple(main.get("enum", ())) + (("const" in main and (main["const"],)) or ())
        specs.append(FieldSpec(
            name, frozenset(leaf["type"] for leaf in leaves), name in required,
            main.get("maxLength"), main.get("minLength"), main.get("maximum"),
            main.get("minimum"), choices,
        ))
    return tuple(specs)


BASES: dict[str, dict[str, Any]] = {
    "join": {"type": "join", "token": "t"},
    "answer": {"type": "answer", "sdp": "v=0"},
    "ice": {"type": "ice", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
            "sdp_mid": "0"},
    "mute": {"type": "mute", "muted": True},
    "hand": {"type": "hand", "raised": True},
    "camera": {"type": "camera", "off": True},
    "screen": {"type": "screen", "sharing": True},
    "consult": {"type": "consult", "action": "request", "with": "x"},
    "present": {"type": "present", "exhibit_id": None, "page": 1},
    "command": {"type": "command", "action": "admit", "participant_id": "x"},
    "ping": {"type": "ping"},
    "media_restart": {"type": "media_restart"},
    "leave": {"type": "leave"},
}


# -- strategies: (raw text, expected code, expected field or None) ----------------------------

Case = tuple[str, str, str | None]

huge_ints = st.one_of(st.integers(min_value=2**63, max_value=10**300),
                      st.integers(max_value=-(2**63), min_value=-(10**300)))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), huge_ints,
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=8), children, max_size=3)),
    max_leaves=6,
)


def encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


VALUES_OF_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": st.one_of(st.integers(), huge_ints),
    "number": st.floats(allow_nan=False, allow_infinity=False),
    "string": st.text(max_size=20),
    "array": st.lists(json_values, max_size=3),
    "object": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
}


def wrong_type(allowed: frozenset[str]) -> st.SearchStrategy[Any]:
    """A JSON value of a type the field does not take."""
    others = sorted(set(VALUES_OF_TYPE) - allowed)
    return st.sampled_from(others).flatmap(lambda t: VALUES_OF_TYPE[t])


def not_json() -> st.SearchStrategy[Case]:
    text = st.text(max_size=80).filter(lambda t: not is_json(t))
    return text.map(lambda t: (t, "malformed_json", None))


def not_messages() -> st.SearchStrategy[Case]:
    """JSON that is no message: not an object, no string type, or a type nobody knows."""
    not_object = json_values.filter(lambda v: not isinstance(v, dict)).map(
        lambda v: (encode(v), "invalid", None))
    no_type = st.dictionaries(st.text(max_size=8).filter(lambda k: k != "type"), json_values,
                              max_size=3)
    untyped = st.builds(lambda d, t: {**d, "type": t} if t is not None else d, no_type,
                        st.one_of(st.none(), json_values.filter(
                            lambda v: not isinstance(v, str)))).map(
        lambda d: (encode(d), "invalid", "type"))
    unknown = st.builds(lambda d, t: {**d, "type": t}, no_type,
                        st.text(max_size=30).filter(lambda t: t not in messages.KNOWN_TYPES)
                        ).map(lambda d: (encode(d), "unknown_type", "type"))
    return st.one_of(not_object, untyped, unknown)


def wrong_fields(kinds: tuple[str, ...]) -> st.SearchStrategy[Case]:
    """A message of a known type with one field wrong: type, length, range, value, missing,
    or a field it does not have."""
    strategies: list[st.SearchStrategy[Case]] = []
    for kind in kinds:
        base = BASES[kind]
        specs = field_specs(kind)
        names = {s.name for s in specs} | {"type"}

        def with_value(spec: FieldSpec, base: dict[str, Any] = base
                       ) -> Callable[[Any], Case]:
            def case(value: Any) -> Case:
                return encode({**base, spec.name: value}), "invalid", spec.name

            return case

        extra = st.text(min_size=1, max_size=20).filter(lambda k, n=names: k not in n)
        strategies.append(st.builds(
            lambda k, v, base=base: (encode({**base, k: v}), "invalid", k), extra, json_values))
        for spec in specs:
            strategies.append(wrong_type(spec.json_types).map(with_value(spec)))
            if spec.required:
                strategies.append(st.just((encode({k: v for k, v in base.items()
                                                   if k != spec.name}), "invalid", spec.name)))
            if spec.max_length is not None:
                strategies.append(st.integers(1, 100).map(
                    lambda n, s=spec: "审" * (s.max_length + n)).map(with_value(spec)))
            if spec.min_length:
                strategies.append(st.just("").map(with_value(spec)))
            if spec.maximum is not None:
                strategies.append(st.one_of(st.integers(min_value=spec.maximum + 1), huge_ints)
                                  .map(with_value(spec)))
            if spec.minimum is not None:
                strategies.append(st.integers(max_value=spec.minimum - 1).map(with_value(spec)))
            if spec.choices:
                other = st.text(max_size=20).filter(lambda t, s=spec: t not in s.choices)
                strategies.append(other.map(with_value(spec)))
            if "integer" in spec.json_types or spec.choices == (1,):
                # Equal to an integer, but not one: refused in strict mode.
                strategies.append(st.sampled_from([True, False, 1.0, "1"]).map(with_value(spec)))
    return st.one_of(strategies)


def nested(raw: str) -> Case:
    """Nesting deeper than any parser recurses is `invalid`; the size limit is checked first, so
    nesting that also makes the message too large (7 bytes a level of `{"a": }`: past ~37,000
    levels) is `too_large`."""
    too_large = len(raw.encode("utf-8")) > messages.MAX_MESSAGE_BYTES
    return raw, "too_large" if too_large else "invalid", None


def nasty() -> list[st.SearchStrategy[Case]]:
    """What JSON allows but no message is: deep nesting, half a surrogate pair, sheer size."""
    depth = st.integers(min_value=2_000, max_value=100_000)
    deep = st.one_of(
        depth.map(lambda d: nested("[" * d + "]" * d)),
        depth.map(lambda d: nested('{"type": "ping", "ref": ' + '{"a": ' * d + "1" + "}" * d
                                   + "}")),
    )
    # Written as JSON escapes: a frame (UTF-8) cannot carry a lone surrogate itself.
    surrogate = st.sampled_from(["\\ud800", "\\udfff", "\\udbff", "a\\udc80b"])
    lone = st.one_of(
        surrogate.map(lambda u: ('{"type": "ping", "ref": "U"}'.replace("U", u), "invalid",
                                 "ref")),
        surrogate.map(lambda u: ('{"type": "join", "token": "U"}'.replace("U", u), "invalid",
                                 "token")),
        surrogate.map(lambda u: ('{"type": "ping", "U": 1}'.replace("U", u), "invalid", None)),
        surrogate.map(lambda u: ('{"type": "U"}'.replace("U", u), "unknown_type", "type")),
    )
    too_large = st.integers(messages.MAX_MESSAGE_BYTES + 1, 3 * messages.MAX_MESSAGE_BYTES).map(
        lambda n: (encode({"type": "ping", "ref": "x" * n}), "too_large", None))
    sdp_too_large = st.integers(messages.MAX_SDP_BYTES + 1, 2 * messages.MAX_SDP_BYTES).map(
        lambda n: (encode({"type": "answer", "sdp": "v" * n}), "sdp_too_large", "sdp"))
    return [deep, lone, too_large, sdp_too_large]


TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


def forged_joins(real_token: str) -> st.SearchStrategy[Case]:
    """Join messages with a token or device key nobody was given."""
    random_secret = st.text(alphabet=TOKEN_ALPHABET, min_size=43, max_size=43)

    def one_changed(i: int, c: str) -> str:
        i %= len(real_token)
        c = c if c != real_token[i] else ("A" if real_token[i] != "A" else "B")
        return real_token[:i] + c + real_token[i + 1:]

    secrets = st.one_of(
        random_secret,
        st.builds(one_changed, st.integers(0, 42), st.sampled_from(TOKEN_ALPHABET)),
        st.integers(1, 42).map(lambda n: real_token[:n]),
        st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=20).map(
            lambda s: real_token + s),
        st.text(min_size=1, max_size=200),
    ).filter(lambda s: s != real_token)
    by_token = secrets.map(lambda s: (encode({"type": "join", "token": s}), "access_denied",
                                      None))
    by_key = secrets.map(lambda s: (encode({"type": "join", "device_key": s}),
                                    "access_denied", None))
    both_or_none = st.sampled_from([
        (encode({"type": "join"}), "invalid", None),
        (encode({"type": "join", "token": real_token, "device_key": real_token}), "invalid",
         None),
    ])
    return st.one_of(by_token, by_key, both_or_none)


def early_messages() -> st.SearchStrategy[Case]:
    """Well-formed messages other than join and ping, sent before joining."""
    kinds = [k for k in messages.KNOWN_TYPES if k not in ("join", "ping")]
    return st.sampled_from(kinds).map(lambda k: (encode(BASES[k]), "not_joined", None))


def refused_after_joining(ids: dict[str, str]) -> st.SearchStrategy[Case]:
    """Well-formed messages an admitted lawyer may send but that are refused for what they ask."""
    anyone = st.sampled_from([*ids.values(), str(uuid.uuid4()), "nobody"])
    commands = st.builds(
        lambda action, target: (encode({"type": "command", "action": action,
                                        "participant_id": target}), "forbidden", None),
        st.sampled_from(messages.Command.model_fields["action"].annotation.__args__),  # type: ignore[union-attr]
        anyone)
    rejoin = st.sampled_from(["t", "x" * 200]).map(
        lambda t: (encode({"type": "join", "token": t}), "already_joined", None))
    present = st.uuids().map(lambda u: (encode({"type": "present", "exhibit_id": str(u)}),
                                        "unknown_exhibit", "exhibit_id"))
    consult = st.builds(
        lambda target: (encode({"type": "consult", "action": "request", "with": target}),
                        "consultation_refused", None),
        st.sampled_from([ids["judge"], str(uuid.uuid4())]))
    end = st.just((encode({"type": "consult", "action": "end"}), "consultation_refused", None))
    # No offer is waiting: any answer is refused, and a candidate that is no candidate too.
    answer = st.text(min_size=1, max_size=200).map(
        lambda sdp: (encode({"type": "answer", "sdp": sdp}), "negotiation_failed", None))
    ice = st.text(min_size=1, max_size=100).filter(lambda c: len(c.split()) < 8).map(
        lambda c: (encode({"type": "ice", "candidate": c, "sdp_mid": "0"}),
                   "negotiation_failed", None))
    return st.one_of(commands, rejoin, present, consult, end, answer, ice)


# -- the world: two hearings on one server ---------------------------------------------------


async def second_hearing(client: TestClient, admin: dict[str, str], clock: FakeClock
                         ) -> LiveHearing:
    """Another hearing at the same time, with its own judge and lawyer, in no courtroom."""
    r = await client.post("/api/v1/hearings", headers=admin, json={
        "case_number": "(2026)测01民初9号", "title": "Another hearing", "kind": "mediation",
        "scheduled_start": clock.now.isoformat(),
        "scheduled_end": clock.now.replace(hour=clock.now.hour + 2).isoformat()})
    assert r.status == 201, await r.text()
    hearing_id = (await r.json())["id"]
    tokens, ids = {}, {}
    for name, role in (("Judge Zhou", "judge"), ("Lawyer Sun", "lawyer")):
        r = await client.post(f"/api/v1/hearings/{hearing_id}/participants", headers=admin,
                              json={"name": name, "role": role, "location": "remote"})
        assert r.status == 201, await r.text()
        seat = await r.json()
        tokens[role], ids[role] = seat["token"], seat["id"]
    return LiveHearing(hearing_id, tokens, ids, "", str(client.make_url("")).rstrip("/"))


class Paced:
    """Sends to a client no faster than the server's rate limit allows."""

    def __init__(self, client: HearingClient) -> None:
        self.client = client
        self._last = 0.0

    async def send_raw(self, raw: str | bytes) -> None:
        wait = self._last + SEND_INTERVAL_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last = time.monotonic()
        await self.client.send_raw(raw)

    async def ping(self, ref: str) -> int:
        """Ping; returns the index of the pong in the client's messages."""
        await self.send_raw(encode({"type": "ping", "ref": ref}))
        await self.client.wait_for(lambda: any(
            m.get("type") == "pong" and m.get("ref") == ref for m in self.client.messages), 10)
        return next(i for i, m in enumerate(self.client.messages)
                    if m.get("type") == "pong" and m.get("ref") == ref)


def seats_view(seats: list[Any]) -> list[dict[str, Any]]:
    return [s.public() for s in seats]


async def joined(base_url: str, token: str, name: str, participants: list[HearingClient]
                 ) -> HearingClient:
    c = HearingClient(base_url, name)
    c.publish = False  # the protocol is under test here; media is in test_fuzz_sdp.py
    participants.append(c)
    await c.join(token)
    await c.next_message("welcome")
    return c


async def admit(judge: HearingClient, participant_id: str) -> None:
    await judge.wait_for(lambda: (judge.seat(participant_id) or {}).get("present") is True)
    await judge.send({"type": "command", "action": "admit", "participant_id": participant_id})
    await judge.wait_for(lambda: (judge.seat(participant_id) or {}).get("admitted") is True)


@dataclass
class Room:
    """Hearing A (its judge, and the admitted lawyer who attacks) and hearing B beside it.

    Examples share the room. One that fails leaves it `tainted`: the next one reconnects
    everybody first, so that hypothesis shrinks towards the message that did the harm.
    """

    hub: Hub
    a: LiveHearing
    b: LiveHearing
    db_state: DatabaseState
    participants: list[HearingClient]
    attacker: Paced | None = None
    others: list[Paced] = field(default_factory=list)
    baseline: Snapshot | None = None
    seats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Where each bystander's messages stood when the baseline was taken.
    marks: dict[int, int] = field(default_factory=dict)
    tainted: bool = True

    async def ready(self) -> Paced:
        if self.tainted:
            await self._connect()
        self.tainted = True  # until the example passes
        assert self.attacker is not None
        return self.attacker

    def passed(self) -> None:
        self.tainted = False

    async def _connect(self) -> None:
        for c in [*(o.client for o in self.others), *([self.attacker.client]
                                                       if self.attacker else [])]:
            await c.close()
        a, b = self.a, self.b
        judge_a = await joined(a.base_url, a.tokens["judge"], "judge A", self.participants)
        lawyer_a = await joined(a.base_url, a.tokens["lawyer"], "lawyer A", self.participants)
        judge_b = await joined(b.base_url, b.tokens["judge"], "judge B", self.participants)
        lawyer_b = await joined(b.base_url, b.tokens["lawyer"], "lawyer B", self.participants)
        # Admitted once, a seat stays admitted when its holder comes back.
        if not (judge_a.seat(a.ids["lawyer"]) or {}).get("admitted"):
            await admit(judge_a, a.ids["lawyer"])
        if not (judge_b.seat(b.ids["lawyer"]) or {}).get("admitted"):
            await admit(judge_b, b.ids["lawyer"])
        deadline = time.monotonic() + 30
        while True:
            seats = [s for h in (a, b) for s in await self.hub.seats(uuid.UUID(h.id))]
            if len(seats) == 4 and all(s.present and s.connection == "connected" for s in seats):
                break
            assert time.monotonic() < deadline, f"the peers did not connect: {seats}"
            await asyncio.sleep(0.1)
        # The roster reaches clients up to 0.1 s after a change (coalesced): wait until every
        # screen shows what the hub holds before taking the marks.
        for client, h in ((judge_a, a), (lawyer_a, a), (judge_b, b), (lawyer_b, b)):
            await client.wait_for(lambda client=client, h=h: all(
                (client.seat(h.ids[role]) or {}).get("connection") == "connected"
                for role in ("judge", "lawyer")), 30)
        self.attacker = Paced(lawyer_a)
        self.others = [Paced(judge_a), Paced(judge_b), Paced(lawyer_b)]
        self.seats = await self.snapshot_seats()
        self.baseline = await self.db_state.snapshot()
        self.marks = {id(o): len(o.client.messages) for o in self.others}

    async def snapshot_seats(self) -> dict[str, list[dict[str, Any]]]:
        return {h.id: seats_view(await self.hub.seats(uuid.UUID(h.id))) for h in (self.a, self.b)}

    async def assert_unchanged(self, what: str) -> None:
        assert await self.snapshot_seats() == self.seats, what
        assert self.baseline is not None
        await self.db_state.assert_unchanged(self.baseline, what)
        for other in self.others:
            changes = [m["type"] for m in other.client.messages[self.marks[id(other)]:]
                       if m.get("type") in STATE_MESSAGES or m.get("type") == "error"]
            assert not changes, (other.client.name, changes, what)
            assert other.client.closed_code is None, (other.client.name, what)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The suite's 1 s heartbeat drops a client whose loop a loaded machine holds for half a
    # second; dead peers are not what these tests are about.
    return settings.model_copy(update={"heartbeat_seconds": 15.0})


@pytest.fixture
async def room(client: TestClient, admin: dict[str, str], clock: FakeClock,
               participants: list[HearingClient], db_state: DatabaseState) -> Room:
    a = await schedule(client, admin, clock)
    b = await second_hearing(client, admin, clock)
    return Room(client.server.app[HUB], a, b, db_state, participants)


async def check_refused(sender: Paced, case: Case) -> dict[str, Any]:
    """Send one hostile message and a ping; exactly one error, naming the problem, comes back
    before the pong."""
    raw, code, field_name = case
    c = sender.client
    mark = len(c.messages)
    await sender.send_raw(raw)
    pong = await sender.ping(uuid.uuid4().hex)
    replies = [m for m in c.messages[mark:pong] if m.get("type") == "error"]
    what = f"{raw[:200]!r}: {replies}"
    assert len(replies) == 1, what
    error = replies[0]
    assert error["code"] == code, what
    assert isinstance(error["message"], str) and error["message"], what
    if field_name is not None:
        assert error.get("field") == field_name, what
    assert not [m for m in c.messages[mark:] if m.get("type") in STATE_MESSAGES], what
    assert c.closed_code is None, what
    return error


# -- before joining ---------------------------------------------------------------------------


@dataclass
class Lobby:
    """A connection that has not joined, renewed well before the server's join timeout, and
    after an example that failed (see `Room`)."""

    base_url: str
    participants: list[HearingClient]
    client: Paced | None = None
    opened: float = 0.0
    tainted: bool = True

    async def ready(self) -> Paced:
        if self.tainted or self.client is None or time.monotonic() - self.opened > JOIN_RENEW_S:
            if self.client is not None:
                await self.client.client.close()
            c = HearingClient(self.base_url, "stranger")
            self.participants.append(c)
            await c.connect()
            self.client, self.opened = Paced(c), time.monotonic()
        self.tainted = True
        return self.client

    def passed(self) -> None:
        self.tainted = False


@pytest.fixture
def lobby(client: TestClient, participants: list[HearingClient]) -> Lobby:
    return Lobby(str(client.make_url("")).rstrip("/"), participants)


@fuzz
@given(data=st.data())
async def test_before_joining_hostile_messages_get_errors_and_open_nothing(
    client: TestClient, hearing: LiveHearing, lobby: Lobby, db_state: DatabaseState,
    data: st.DataObject,
) -> None:
    before = await db_state.baseline()
    case = data.draw(st.one_of(not_json(), not_messages(), wrong_fields(messages.KNOWN_TYPES),
                               *nasty(), forged_joins(hearing.tokens["lawyer"]),
                               early_messages()), label="case")
    await check_refused(await lobby.ready(), case)
    assert await client.server.app[HUB].seats(uuid.UUID(hearing.id)) == [], case
    await db_state.assert_unchanged(before, case[0][:200])
    lobby.passed()


# -- after joining ----------------------------------------------------------------------------


@fuzz
@given(data=st.data())
async def test_after_joining_hostile_messages_get_errors_and_change_nothing(
    room: Room, data: st.DataObject,
) -> None:
    case = data.draw(st.one_of(not_json(), not_messages(), wrong_fields(messages.KNOWN_TYPES),
                               *nasty(), refused_after_joining(room.a.ids)), label="case")
    await check_refused(await room.ready(), case)
    # The other hearing answers as before, and nobody anywhere saw anything change.
    for other in room.others:
        await other.ping(uuid.uuid4().hex)
    await room.assert_unchanged(case[0][:200])
    room.passed()


# -- frames -----------------------------------------------------------------------------------

ONE_OF_EACH: list[Case] = [
    ("", "malformed_json", None),
    ("[" * 100_000 + "]" * 100_000, "invalid", None),
    ('{"type": "ping", "ref": ' + "[" * 5_000 + "]" * 5_000 + "}", "invalid", None),
    ('{"type": "ping", "ref": "\\ud800"}', "invalid", "ref"),
    ('{"type": "ping", "\\udfff": 1}', "invalid", None),
    ('{"type": "join", "v": true, "token": "x"}', "invalid", "v"),
    (encode({"type": "ping", "ref": "审" * messages.MAX_MESSAGE_BYTES}), "too_large", None),
    (encode({"type": "answer", "sdp": "v" * (messages.MAX_SDP_BYTES + 1)}), "sdp_too_large",
     "sdp"),
]


async def test_one_of_each_kind_of_hostile_frame_before_and_after_joining(
    room: Room, lobby: Lobby,
) -> None:
    """Whatever hypothesis draws, each kind once; and binary frames, which are no text."""
    attacker = await room.ready()
    stranger = await lobby.ready()
    for sender in (stranger, attacker):
        for case in ONE_OF_EACH:
            error = await check_refused(sender, case)
            assert "ref" not in error, error  # half a surrogate pair is never echoed
        mark = len(sender.client.messages)
        await sender.send_raw(b"\x00\x01\xff binary")
        pong = await sender.ping("binary")
        errors = [m for m in sender.client.messages[mark:pong] if m.get("type") == "error"]
        assert [e["code"] for e in errors] == ["invalid"], errors
        assert "binary" in errors[0]["message"]
    await room.assert_unchanged("one of each")
    room.passed()


async def closed_with(c: HearingClient, send: Any) -> int:
    await send(c)
    await c.wait_for(lambda: c.closed_code is not None, 10)
    assert c.closed_code is not None
    return c.closed_code


async def test_frames_the_websocket_protocol_refuses_close_the_connection_only(
    room: Room, participants: list[HearingClient],
) -> None:
    """A frame over 1 MiB closes with 1009, text that is not UTF-8 with 1007 (RFC 6455), before
    or after joining; a participant comes back to the same seat and nobody else notices."""
    await room.ready()
    a = room.a

    def huge(c: HearingClient) -> Any:
        return c.send_raw("x" * (4 * messages.MAX_MESSAGE_BYTES + 1))

    def not_utf8(c: HearingClient) -> Any:
        assert c._ws is not None
        return c._ws._writer.send_frame(b'{"type": "ping", "ref": "\xff\xfe"}', WSMsgType.TEXT)

    judge = room.others[0].client
    d_id = a.ids["defendant"]

    async def presence(present: bool) -> None:
        await judge.wait_for(lambda: (judge.seat(d_id) or {}).get("present") is present)

    for send, code in ((huge, 1009), (not_utf8, 1007)):
        stranger = HearingClient(a.base_url, "stranger")
        participants.append(stranger)
        await stranger.connect()
        assert await closed_with(stranger, send) == code
        defendant = await joined(a.base_url, a.tokens["defendant"], "defendant", participants)
        await presence(True)
        assert await closed_with(defendant, send) == code
        await presence(False)
        back = await joined(a.base_url, a.tokens["defendant"], "defendant again", participants)
        welcome = next(m for m in back.messages if m["type"] == "welcome")
        assert welcome["participant"]["participant_id"] == d_id
        assert welcome["participant"]["admitted"] is False
        await back.close()
        await presence(False)
    # Everyone else's seat is as it was; the other hearing saw nothing at all.
    seats = await room.snapshot_seats()
    assert seats[room.b.id] == room.seats[room.b.id]
    assert [s for s in seats[a.id] if s["participant_id"] != a.ids["defendant"]] == room.seats[a.id]
    for other in room.others[1:]:
        await other.ping(uuid.uuid4().hex)
        assert not [m for m in other.client.messages[room.marks[id(other)]:]
                    if m.get("type") in STATE_MESSAGES | {"error"}]
