"""Signing the trial record, against real SQLite and PostgreSQL: parties sign the exact version
they read, ask for corrections the clerk accepts or refuses with a reason, refuse to sign;
the judge and the clerk sign last; the record is final when everyone is done."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from courtrooms.errors import AccessDenied, InvalidInput, NotEditable
from courtrooms.lifecycle import HearingAction
from courtrooms.models import Location, Role
from courtrooms.registry import Registry
from courtrooms.schemas import ParticipantIn
from courtrooms.signing import RecordChanged, Signing
from courtrooms.transcripts import SpokenLine, Transcripts
from tests.courtrooms.builders import ACTOR, make_hearing


def signature(strokes: int = 3) -> bytes:
    """A drawn signature: dark strokes on transparency, as the page's canvas gives it."""
    picture = Image.new("RGBA", (400, 150), (0, 0, 0, 0))
    pen = ImageDraw.Draw(picture)
    for i in range(strokes):
        pen.line([(20 + 40 * i, 120), (60 + 40 * i, 30), (100 + 40 * i, 110)],
                 fill=(20, 20, 20, 255), width=4)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


async def closed_hearing(registry: Registry) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    hearing = await make_hearing(registry, 1, 2)
    people = {}
    for name, role in (("王审判", Role.JUDGE), ("刘书记", Role.CLERK), ("李律师", Role.LAWYER),
                       ("赵某", Role.PARTY), ("监督员", Role.OBSERVER)):
        issued = await registry.add_participant(hearing.id, ParticipantIn(
            name=name, role=role, location=Location.REMOTE), ACTOR)
        people[role.value] = issued.participant.id
    transcripts = Transcripts(registry.db, registry.clock)
    for who, start, text in (("judge", 1.0, "现在开庭。"), ("party", 5.0, "我叫赵某某。")):
        await transcripts.add(hearing.id, SpokenLine(people[who], start, start + 2, text, "zh"))
    for action in (HearingAction.OPEN, HearingAction.START, HearingAction.CLOSE):
        await registry.transition(hearing.id, action, ACTOR)
    return hearing.id, people


async def participant(registry: Registry, hearing_id: uuid.UUID, pid: uuid.UUID):
    return next(p for p in await registry.list_participants(hearing_id) if p.id == pid)


async def test_parties_sign_first_the_court_last_and_the_record_becomes_final(
    registry: Registry, tmp_path: Path
) -> None:
    hearing_id, people = await closed_hearing(registry)
    signing = Signing(registry.db, registry.clock, tmp_path,
                      Transcripts(registry.db, registry.clock))
    state = await signing.state(hearing_id)
    # Observers do not sign; the court is listed last.
    assert [s.role for s in state.signers] == ["lawyer", "party", "judge", "clerk"]
    assert {s.status for s in state.signers} == {"pending"}
    read = state.record_sha256
    judge = await participant(registry, hearing_id, people["judge"])
    with pytest.raises(NotEditable, match="sign last"):
        await signing.sign(hearing_id, judge, read, signature())
    observer = await participant(registry, hearing_id, people["observer"])
    with pytest.raises(AccessDenied):
        await signing.sign(hearing_id, observer, read, signature())
    lawyer = await participant(registry, hearing_id, people["lawyer"])
    with pytest.raises(InvalidInput, match="empty"):
        await signing.sign(hearing_id, lawyer, read, signature(strokes=0))
    with pytest.raises(InvalidInput, match="PNG"):
        await signing.sign(hearing_id, lawyer, read, b"GIF89a not a png")

    # The party asks for a correction; the clerk accepts it: the record changes, and a
    # signature of the version read before no longer counts.
    party = await participant(registry, hearing_id, people["party"])
    await signing.sign(hearing_id, lawyer, read, signature())
    line = next(li for li in state.lines if li.participant_id == people["party"])
    state = await signing.request_correction(hearing_id, party, line.id, "我叫赵某。",
                                             "名字多了一个字")
    [request] = state.requests
    assert request.status == "pending"
    with pytest.raises(InvalidInput, match="why"):
        await signing.decide(hearing_id, request.id, False, None, f"participant:{people['clerk']}")
    state = await signing.decide(hearing_id, request.id, True, None,
                                 f"participant:{people['clerk']}")
    assert state.requests[0].status == "accepted"
    assert state.record_sha256 != read
    assert [li.text for li in state.lines if li.participant_id == people["party"]] == ["我叫赵某。"]
    assert state.signer(people["lawyer"]).status == "stale"
    with pytest.raises(RecordChanged):
        await signing.sign(hearing_id, party, read, signature())

    # A second request is refused with a reason, and the refusal is kept.
    state = await signing.request_correction(hearing_id, party, line.id, "我不认罪。", None)
    second = state.requests[1].id
    state = await signing.decide(hearing_id, second, False, "与录音不符",
                                 f"participant:{people['clerk']}")
    assert (state.requests[1].status, state.requests[1].decision_reason) == ("refused",
                                                                            "与录音不符")

    now = state.record_sha256
    await signing.sign(hearing_id, lawyer, now, signature())
    with pytest.raises(NotEditable, match="already signed"):
        await signing.sign(hearing_id, lawyer, now, signature())
    state = await signing.refuse(hearing_id, people["party"], "不同意笔录内容", ACTOR)
    assert state.signer(people["party"]).status == "refused"
    assert state.parties_done and not state.final
    await signing.sign(hearing_id, judge, now, signature())
    clerk = await participant(registry, hearing_id, people["clerk"])
    state = await signing.sign(hearing_id, clerk, now, signature(strokes=4))
    assert state.final and state.complete
    with pytest.raises(NotEditable, match="final"):
        await signing.refuse(hearing_id, people["lawyer"], "x", ACTOR)

    # Each signature is a file whose hash the chain holds; an altered one is found.
    assert await signing.verify() == []
    path = signing.signature_path(hearing_id, state.signer(people["clerk"]))
    assert path is not None and path.read_bytes() == signature(strokes=4)
    path.write_bytes(signature(strokes=5))
    [finding] = await signing.verify()
    assert "altered" in finding.message


async def test_a_record_is_signed_only_once_the_hearing_is_closed(
    registry: Registry, tmp_path: Path
) -> None:
    hearing = await make_hearing(registry, 1, 2)
    signing = Signing(registry.db, registry.clock, tmp_path,
                      Transcripts(registry.db, registry.clock))
    with pytest.raises(NotEditable, match="closed"):
        await signing.state(hearing.id)


async def test_at_a_recess_the_judge_chooses_the_record_so_far_is_signed(
    registry: Registry, tmp_path: Path
) -> None:
    """Signing the record so far opens only at a recess and only when the judge opens it; it
    signs that version, closes when the hearing resumes, and counts for that recess alone:
    at the close everyone signs the whole record again, and only then is it final."""
    hearing = await make_hearing(registry, 1, 2)
    people = {}
    for name, role in (("王审判", Role.JUDGE), ("刘书记", Role.CLERK), ("赵某", Role.PARTY),
                       ("李律师", Role.LAWYER)):
        people[role.value] = await registry.add_participant(hearing.id, ParticipantIn(
            name=name, role=role, location=Location.REMOTE), ACTOR)
    transcripts = Transcripts(registry.db, registry.clock)
    signing = Signing(registry.db, registry.clock, tmp_path, transcripts)
    judge_ref = f"participant:{people['judge'].participant.id}"
    await transcripts.add(hearing.id, SpokenLine(people["judge"].participant.id, 1.0, 3.0,
                                                 "现在开庭。", "zh"))
    for action in (HearingAction.OPEN, HearingAction.START):
        await registry.transition(hearing.id, action, ACTOR)
    with pytest.raises(NotEditable, match="at a recess"):
        await signing.open_at_recess(hearing.id, judge_ref)
    await registry.transition(hearing.id, HearingAction.RECESS, ACTOR)
    with pytest.raises(NotEditable, match="judge opens signing"):
        await signing.state(hearing.id)  # a recess alone opens nothing

    opened = await signing.open_at_recess(hearing.id, judge_ref)
    assert opened.stage == "recess" and [li.text for li in opened.lines] == ["现在开庭。"]
    assert (await signing.open_at_recess(hearing.id, judge_ref)).record_sha256 == \
        opened.record_sha256  # opened once per recess
    party, lawyer, judge, clerk = (people[r].participant
                                   for r in ("party", "lawyer", "judge", "clerk"))
    await signing.sign(hearing.id, party, opened.record_sha256, signature())
    with pytest.raises(NotEditable, match="sign last"):
        await signing.sign(hearing.id, judge, opened.record_sha256, signature())
    await signing.refuse(hearing.id, lawyer.id, "休庭时不签", f"participant:{lawyer.id}")
    await signing.sign(hearing.id, judge, opened.record_sha256, signature())
    state = await signing.sign(hearing.id, clerk, opened.record_sha256, signature())
    assert state.complete and not state.final  # a recess's signatures never finalize
    events = [e for e in await registry.hearing_events(hearing.id)
              if e.action.startswith("record.")]
    assert [e.action for e in events] == ["record.signing_opened", "record.signed",
                                          "record.signing_refused", "record.signed",
                                          "record.signed"]
    assert {e.data.get("stage") for e in events[1:]} == {"recess"}
    assert events[1].data["record_sha256"] == opened.record_sha256

    # Resumed: the recess's signing is over; the next recess opens afresh.
    await registry.transition(hearing.id, HearingAction.RESUME, ACTOR)
    with pytest.raises(NotEditable):
        await signing.state(hearing.id)
    await transcripts.add(hearing.id, SpokenLine(party.id, 5.0, 7.0, "我叫赵某。", "zh"))
    await registry.transition(hearing.id, HearingAction.RECESS, ACTOR)
    with pytest.raises(NotEditable):
        await signing.state(hearing.id)
    again = await signing.open_at_recess(hearing.id, judge_ref)
    assert again.record_sha256 != opened.record_sha256 and len(again.lines) == 2
    assert {s.status for s in again.signers} == {"pending"}

    # Closed: the whole record, signed by everyone again; the recess's refusal is not its.
    await registry.transition(hearing.id, HearingAction.CLOSE, ACTOR)
    closed = await signing.state(hearing.id)
    assert closed.stage == "closed" and {s.status for s in closed.signers} == {"pending"}
    for who in (party, lawyer, judge):
        await signing.sign(hearing.id, who, closed.record_sha256, signature())
    final = await signing.sign(hearing.id, clerk, closed.record_sha256, signature())
    assert final.final
