"""Mutated SDP answers and ICE candidates from an admitted participant, against real peers.

The lawyer answers the server's offers with what hypothesis makes of a genuine answer
(sections dropped or doubled, fingerprints broken, lines cut, huge numbers, non-ASCII text,
garbage) and sends candidate lines built and broken the same way. What cannot work is refused
with `negotiation_failed` (or `invalid`, `sdp_too_large`) naming it; what aiortc may take is
taken. Either way the judge and the defendant keep seeing and hearing each other, nobody else
gets an error, and the lawyer, answering properly at last, gets media again.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from config import Settings
from signaling.messages import MAX_SDP_BYTES
from tests.clients import BeepTrack, HearingClient
from tests.conftest import FakeClock
from tests.signaling.conftest import LiveHearing, schedule

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SEND_INTERVAL_S = 1 / 15  # under the server's 20 messages a second
BATCH = 12

fuzz = hypothesis_settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)


class Attacker(HearingClient):
    """A participant whose offers the test answers, with whatever it likes."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url, "lawyer (attacker)")
        self.offers: list[str] = []
        self._last_send = 0.0

    async def _answer(self, sdp: str) -> None:
        self.offers.append(sdp)

    async def send_raw(self, data: str | bytes) -> None:
        wait = self._last_send + SEND_INTERVAL_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_send = time.monotonic()
        await super().send_raw(data)

    async def sample_answer(self) -> str:
        """A genuine answer to the latest offer, from a peer thrown away at once."""
        pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        try:
            pc.addTrack(BeepTrack())
            pc.addTrack(VideoStreamTrack())
            await pc.setRemoteDescription(RTCSessionDescription(self.offers[-1], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            return str(pc.localDescription.sdp)
        finally:
            await pc.close()

    async def answer_properly(self) -> None:
        """Answer the latest offer with a fresh peer, as a browser would."""
        if self.pc is not None:
            await self.pc.close()
            self.pc = None
        await HearingClient._answer(self, self.offers[-1])

    async def exchange(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """Send a message and a ping; the errors that came back before the pong."""
        assert self.closed_code is None, f"the server closed the connection: {self.closed_code}"
        mark = len(self.messages)
        ref = uuid.uuid4().hex
        await self.send_raw(json.dumps(message, ensure_ascii=False))
        await self.send_raw(json.dumps({"type": "ping", "ref": ref}))
        await self.wait_for(lambda: any(m.get("ref") == ref for m in self.messages[mark:]), 15)
        pong = next(i for i, m in enumerate(self.messages) if i >= mark and m.get("ref") == ref)
        return [m for m in self.messages[mark:pong] if m.get("type") == "error"]


# -- mutations of an answer: (operation, parameters, must it be refused?) ---------------------


@dataclass(frozen=True)
class Mutation:
    op: str
    must_refuse: bool
    args: tuple[Any, ...] = ()

    def apply(self, sdp: str) -> str:
        return MUTATE[self.op](sdp, *self.args)


def _lines(sdp: str) -> list[str]:
    return sdp.rstrip("\r\n").split("\r\n")


def _join(lines: list[str]) -> str:
    return "\r\n".join(lines) + "\r\n"


def _sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    lines = _lines(sdp)
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    sections = [lines[a:b] for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]
    return lines[:starts[0]], sections


def drop_section(sdp: str, k: int) -> str:
    head, sections = _sections(sdp)
    del sections[k % len(sections)]
    return _join(head + [line for s in sections for line in s])


def double_section(sdp: str, k: int) -> str:
    head, sections = _sections(sdp)
    sections.append(sections[k % len(sections)])
    return _join(head + [line for s in sections for line in s])


def without(sdp: str, prefix: str) -> str:
    return _join([line for line in _lines(sdp) if not line.startswith(prefix)])


def fingerprints(sdp: str, algorithm: str | None, value: str | None) -> str:
    def replace(m: re.Match[str]) -> str:
        return f"a=fingerprint:{algorithm or m.group(1)} {value or m.group(2)}"

    return re.sub(r"a=fingerprint:(\S+) (\S+)", replace, sdp)


def one_fingerprint(sdp: str, digest: bytes) -> str:
    """Every section's fingerprints replaced by one well-formed sha-256 of other bytes."""
    value = ":".join(f"{b:02X}" for b in digest)
    lines: list[str] = []
    for line in _lines(sdp):
        if line.startswith("a=fingerprint:"):
            if not lines or not lines[-1].startswith("a=fingerprint:"):
                lines.append(f"a=fingerprint:sha-256 {value}")
            continue
        lines.append(line)
    return _join(lines)


def substitute(sdp: str, pattern: str, replacement: str) -> str:
    return re.sub(pattern, lambda _m: replacement, sdp)


def truncate_early(sdp: str, fraction: float) -> str:
    """Cut before the second section starts: at least one section is missing."""
    second = [m.start() for m in re.finditer(r"^m=", sdp, re.M)][1]
    return sdp[:max(1, int(second * fraction))]


def cut_line(sdp: str, k: int, fraction: float) -> str:
    lines = _lines(sdp)
    i = k % len(lines)
    lines[i] = lines[i][:int(len(lines[i]) * fraction)]
    return _join(lines)


def huge_number(sdp: str, k: int, digits: int) -> str:
    numbers = list(re.finditer(r"\d+", sdp))
    m = numbers[k % len(numbers)]
    return sdp[:m.start()] + "9" * digits + sdp[m.end():]


def insert(sdp: str, k: int, text: str) -> str:
    i = k % len(sdp)
    return sdp[:i] + text + sdp[i:]


def extra_lines(sdp: str, k: int, lines: list[str]) -> str:
    existing = _lines(sdp)
    i = 1 + k % (len(existing) - 1)
    return _join(existing[:i] + lines + existing[i:])


def replace_all(sdp: str, text: str) -> str:
    return text


def padded(sdp: str, size: int) -> str:
    return extra_lines(sdp, 3, ["a=x-padding:" + "x" * size])


MUTATE: dict[str, Any] = {
    "drop_section": drop_section,
    "double_section": double_section,
    "without": without,
    "fingerprints": fingerprints,
    "one_fingerprint": one_fingerprint,
    "substitute": substitute,
    "truncate_early": truncate_early,
    "cut_line": cut_line,
    "huge_number": huge_number,
    "insert": insert,
    "extra_lines": extra_lines,
    "replace_all": replace_all,
    "padded": padded,
    "line_feeds": lambda sdp: sdp.replace("\r\n", "\n"),
    "blank_lines": lambda sdp: sdp.replace("\r\n", "\r\n\r\n"),
}

hex_pairs = st.lists(st.sampled_from("0123456789ABCDEF"), min_size=2, max_size=2).map("".join)
bad_fingerprint_values = st.one_of(
    st.lists(hex_pairs, min_size=1, max_size=80).filter(lambda p: len(p) not in (32, 48, 64))
    .map(":".join),
    st.text(alphabet=st.characters(blacklist_characters=" \r\n", blacklist_categories=["Cs"]),
            min_size=1, max_size=40)
    .filter(lambda t: not re.fullmatch(r"([0-9A-Fa-f]{2}:)*[0-9A-Fa-f]{2}", t)),
)
# (No lone surrogates: they are not text a WebSocket can carry; the protocol fuzzer sends them
# escaped, tests/signaling/test_fuzz_protocol.py.)
odd_text = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
                   min_size=1, max_size=30)
non_ascii = st.text(alphabet=st.characters(min_codepoint=0x80, blacklist_categories=["Cs"]),
                    min_size=1, max_size=20)
fraction = st.floats(min_value=0.0, max_value=1.0)

refused_mutations = st.one_of(
    st.integers(0, 1).map(lambda k: Mutation("drop_section", True, (k,))),
    st.integers(0, 1).map(lambda k: Mutation("double_section", True, (k,))),
    st.sampled_from(["a=fingerprint:", "a=ice-ufrag:", "a=ice-pwd:", "a=rtcp-mux", "a=mid:",
                     "m=video"]).map(lambda p: Mutation("without", True, (p,))),
    bad_fingerprint_values.map(lambda v: Mutation("fingerprints", True, (None, v))),
    st.sampled_from(["md5", "sha-1", "sha-224", "SHA256", "sha_256", "审"]).map(
        lambda a: Mutation("fingerprints", True, (a, None))),
    st.sampled_from(["actpass", "holdconn", ""]).map(
        lambda s: Mutation("substitute", True, (r"a=setup:\w+", f"a=setup:{s}"))),
    st.one_of(odd_text, non_ascii).filter(lambda t: t.strip() not in ("0", "1")).map(
        lambda t: Mutation("substitute", True, (r"a=mid:0", f"a=mid:{t.strip() or 'x'}"))),
    fraction.map(lambda f: Mutation("truncate_early", True, (f,))),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=300)
    .filter(lambda t: "m=" not in t).map(
        lambda t: Mutation("replace_all", True, (t or "x",))),
    st.integers(MAX_SDP_BYTES, 2 * MAX_SDP_BYTES).map(lambda n: Mutation("padded", True, (n,))),
)
# What aiortc may well take: the answer is applied, or refused, never anything else.
tolerated_mutations = st.one_of(
    st.builds(lambda k, f: Mutation("cut_line", False, (k, f)), st.integers(0, 200), fraction),
    st.builds(lambda k, d: Mutation("huge_number", False, (k, d)), st.integers(0, 200),
              st.integers(6, 400)),
    st.builds(lambda k, t: Mutation("insert", False, (k, t)), st.integers(0, 5000), non_ascii),
    st.builds(lambda k, lines: Mutation("extra_lines", False, (k, lines)), st.integers(0, 200),
              st.lists(st.one_of(odd_text, odd_text.map(lambda t: "a=" + t)), min_size=1,
                       max_size=5)),
    st.binary(min_size=32, max_size=32).map(lambda d: Mutation("one_fingerprint", False, (d,))),
    st.sampled_from([
        Mutation("line_feeds", False), Mutation("blank_lines", False),
        Mutation("substitute", False, (r"a=(recvonly|sendonly)", "a=sendrecv")),
        Mutation("substitute", False, (r"a=group:BUNDLE.*", "a=group:BUNDLE 7 8")),
        Mutation("substitute", False, (r"a=group:BUNDLE (\S+) (\S+)", "a=group:BUNDLE 1 0")),
        Mutation("substitute", False, (r"c=IN IP4 \S+", "c=IN IP4 999.999.999.999")),
    ]),
)

# -- ICE candidates: (candidate, sdp_mid, sdp_mline_index, must it be refused?) ---------------

Candidate = tuple[str, str | None, int | None, bool]
words = st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=8)
numbers = st.one_of(st.integers(0, 70_000), st.integers(10**6, 10**30))
hosts = st.sampled_from(["127.0.0.1", "::1", "0.0.0.0", "255.255.255.255", "审判.example",
                         "x" * 300, "[::1]"])


def candidate_line(foundation: str, component: Any, protocol: str, priority: Any, host: str,
                   port: Any, typ: str, tail: list[str]) -> str:
    return " ".join(["candidate:" + foundation, str(component), protocol, str(priority), host,
                     str(port), "typ", typ, *tail])


well_formed = st.builds(
    candidate_line, st.one_of(words, st.integers(0, 10**12).map(str)), numbers,
    st.sampled_from(["udp", "tcp", "UDP", "sctp", "审"]), numbers, hosts, numbers,
    st.sampled_from(["host", "srflx", "relay", "prflx", "审"]),
    st.sampled_from([[], ["raddr", "127.0.0.1", "rport", "9"], ["tcptype", "active"],
                     ["generation", "0"], ["ufrag", "abcd"]]),
)
mids = st.one_of(st.none(), st.sampled_from(["0", "1", "9", "审"]))
indexes = st.one_of(st.none(), st.integers(0, 1024))
refused_candidates = st.one_of(
    # Fewer than the eight fields a candidate has.
    st.builds(lambda line, n, mid: (" ".join(line.split()[:n]), mid or "0", None, True),
              well_formed, st.integers(1, 7), mids),
    # A field that must be a number is not one.
    st.builds(lambda line, i, w: (" ".join(w if j == i else f for j, f in
                                           enumerate(line.split())), "0", None, True),
              well_formed, st.sampled_from([1, 3, 5]), words),
    # Nothing says which media section it belongs to.
    well_formed.map(lambda line: (line, None, None, True)),
)
tolerated_candidates = st.builds(lambda line, mid, index: (line, mid, index, False),
                                 well_formed, mids, indexes).filter(
    lambda c: c[1] is not None or c[2] is not None)


# -- the room ---------------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The suite's 1 s heartbeat drops a client whose loop a loaded machine holds for half a
    # second; dead peers are not what these tests are about.
    return settings.model_copy(update={"heartbeat_seconds": 15.0})




@dataclass
class MediaRoom:
    judge: HearingClient
    defendant: HearingClient
    attacker: Attacker
    ids: dict[str, str]
    pending: bool = True  # the latest offer to the attacker still waits for an answer
    sample: str = ""
    offers_seen: int = 0
    refusals: dict[str, int] = field(default_factory=dict)

    async def offer_waiting(self) -> str:
        """A genuine answer to an offer the server waits on (a fresh one if needed)."""
        a = self.attacker
        if not self.pending:
            seen = len(a.offers)
            await a.send({"type": "media_restart"})
            await a.wait_for(lambda: len(a.offers) > seen, 20)
            self.pending = True
        if len(a.offers) != self.offers_seen:
            self.sample = await a.sample_answer()
            self.offers_seen = len(a.offers)
        return self.sample

    def frames(self) -> tuple[int, int]:
        return (self.judge.frames_from(self.ids["defendant"], "video"),
                self.defendant.frames_from(self.ids["judge"], "video"))

    async def bystanders_unharmed(self, before: tuple[int, int], what: str) -> None:
        await self.judge.wait_for(lambda: self.frames()[0] > before[0] + 10, 15)
        await self.defendant.wait_for(lambda: self.frames()[1] > before[1] + 10, 15)
        for c in (self.judge, self.defendant):
            assert not [m for m in c.messages if m.get("type") == "error"], (c.name, what)
            assert c.closed_code is None, (c.name, what)

    async def attacker_recovers(self) -> None:
        """Answering properly, the attacker is in the hearing again, both ways."""
        await self.offer_waiting()
        a = self.attacker
        a.frames_by_mid.clear()
        await a.answer_properly()
        self.pending = False
        await a.wait_for(lambda: a.frames_from(self.ids["judge"], "video") > 10, 30)
        lawyer = self.ids["lawyer"]
        start = self.judge.frames_from(lawyer, "video")
        await self.judge.wait_for(lambda: self.judge.frames_from(lawyer, "video") > start + 10,
                                  30)


@pytest.fixture(autouse=True)
def restarts_unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each applied answer is followed by a media_restart for a fresh offer, far more often than
    # a page ever restarts; the restart limit has its own test (tests/signaling/test_session.py).
    monkeypatch.setattr("signaling.hearing.MEDIA_RESTARTS_BURST", 1e9)


@pytest.fixture
async def media_room(client: TestClient, admin: dict[str, str], clock: FakeClock,
                     participants: list[HearingClient]) -> AsyncIterator[MediaRoom]:
    hearing: LiveHearing = await schedule(client, admin, clock, auto_admit=True)
    judge = HearingClient(hearing.base_url, "judge")
    defendant = HearingClient(hearing.base_url, "defendant")
    attacker = Attacker(hearing.base_url)
    participants += [judge, defendant, attacker]
    await judge.join(hearing.tokens["judge"])
    await defendant.join(device_key=hearing.device_key)
    room = MediaRoom(judge, defendant, attacker, hearing.ids)
    await judge.wait_for(lambda: room.frames()[0] > 10, 30)
    await defendant.wait_for(lambda: room.frames()[1] > 10, 30)
    # Last, so that its first offer does not wait out the server's answer timeout meanwhile.
    await attacker.join(hearing.tokens["lawyer"])
    await attacker.wait_for(lambda: bool(attacker.offers), 20)
    yield room


def assert_named(errors: list[dict[str, Any]], codes: set[str], what: str) -> None:
    assert len(errors) == 1, (what, errors)
    error = errors[0]
    assert error["code"] in codes, (what, error)
    assert error["message"], (what, error)
    if error["code"] == "negotiation_failed":
        assert "answer" in error["message"] or "candidate" in error["message"], (what, error)


@fuzz
@given(batch=st.lists(st.one_of(refused_mutations, tolerated_mutations), min_size=BATCH,
                      max_size=BATCH))
async def test_mutated_answers_are_refused_or_applied_and_the_hearing_goes_on(
    media_room: MediaRoom, batch: list[Mutation],
) -> None:
    room = media_room
    before = room.frames()
    for mutation in batch:
        sdp = mutation.apply(await room.offer_waiting())
        what = f"{mutation.op}{mutation.args!r:.120}"
        errors = await room.attacker.exchange({"type": "answer", "sdp": sdp})
        if mutation.must_refuse or errors:
            expected = {"sdp_too_large"} if len(sdp.encode()) > MAX_SDP_BYTES else {
                "negotiation_failed"}
            assert_named(errors, expected, what)
            room.refusals[mutation.op] = room.refusals.get(mutation.op, 0) + 1
        else:
            room.pending = False  # applied: the offer is answered, for better or worse
    await room.bystanders_unharmed(before, f"{[m.op for m in batch]}")
    await room.attacker_recovers()


@fuzz
@given(batch=st.lists(st.one_of(refused_candidates, tolerated_candidates), min_size=BATCH,
                      max_size=BATCH))
async def test_mutated_ice_candidates_are_refused_or_added_and_the_hearing_goes_on(
    media_room: MediaRoom, batch: list[Candidate],
) -> None:
    room = media_room
    if room.pending:
        await room.attacker_recovers()
    before = room.frames()
    for candidate, mid, index, must_refuse in batch:
        errors = await room.attacker.exchange({"type": "ice", "candidate": candidate,
                                               "sdp_mid": mid, "sdp_mline_index": index})
        if must_refuse or errors:
            assert_named(errors, {"negotiation_failed"}, candidate)
    await room.bystanders_unharmed(before, f"{batch}")
    # The attacker's own connection survived its own nonsense too.
    a = room.attacker
    start = a.frames_from(room.ids["judge"], "video")
    await a.wait_for(lambda: a.frames_from(room.ids["judge"], "video") > start + 10, 15)
