"""Settled text into the trial record (real SQLite and PostgreSQL): live lines revised by
`recognizer:settled` and audited as corrections, lines the live record missed added; a
person's correction and the clerk's structural edits win."""

from __future__ import annotations

import pytest

from courtrooms.editing import RecordEdit
from courtrooms.errors import RecordSealed
from courtrooms.lifecycle import HearingAction
from courtrooms.models import Location, Role
from courtrooms.registry import Registry
from courtrooms.schemas import ParticipantIn
from courtrooms.transcripts import CORRECTED, SETTLING, LineHistory, SpokenLine, Transcripts
from tests.courtrooms.builders import ACTOR, make_hearing


async def test_settled_text_revises_live_lines_but_not_a_persons_correction(
    registry: Registry,
) -> None:
    hearing = await make_hearing(registry, 1, 2)
    issued = await registry.add_participant(hearing.id, ParticipantIn(
        name="赵某", role=Role.PARTY, location=Location.REMOTE), ACTOR)
    party = issued.participant.id
    transcripts = Transcripts(registry.db, registry.clock)
    first, second, third = [
        await transcripts.add(hearing.id, SpokenLine(party, start, start + 2, text, "zh"))
        for start, text in ((1.0, "我叫赵某"), (4.0, "我是被告"), (7.0, "我没有异议"))]
    await transcripts.correct(hearing.id, third.id, "我没有异议。", "clerk:刘")

    revised, added = await transcripts.settle(
        hearing.id,
        {first.id: "我叫赵某。", second.id: "我是被告。", third.id: "我没有意义。"},
        [SpokenLine(party, 10.0, 11.0, "谢谢。", "zh", (("谢谢。", 10.0, 11.0, 0.9),))])
    # The clerk's correction stands; the others take the settled text, the live kept.
    assert [r.id for r in revised] == [first.id, second.id]
    _, lines = await transcripts.of_hearing(hearing.id)
    assert [li.text for li in lines] == ["我叫赵某。", "我是被告。", "我没有异议。", "谢谢。"]
    assert [a.id for a in added] == [lines[3].id] and not lines[3].recovered
    [revision] = await transcripts.revisions(hearing.id, first.id)
    assert (revision.author, revision.before, revision.after) == (
        SETTLING, "我叫赵某", "我叫赵某。")
    async with registry.db.read() as session:
        from sqlalchemy import select

        from courtrooms.models import AuditEvent
        authors = (await session.scalars(select(AuditEvent.actor).where(
            AuditEvent.hearing_id == hearing.id, AuditEvent.action == CORRECTED))).all()
    assert sorted(authors) == sorted(["clerk:刘", SETTLING, SETTLING])
    # Settling is no correction: the court is shown people's corrections apart.
    histories = await transcripts.histories(hearing.id)
    assert histories == {first.id: LineHistory(0, settled=True),
                         second.id: LineHistory(0, settled=True),
                         third.id: LineHistory(1, settled=False)}
    await transcripts.correct(hearing.id, first.id, "我叫赵某某。", "clerk:刘")
    assert (await transcripts.histories(hearing.id))[first.id] == LineHistory(1, settled=True)
    assert await transcripts.verify() == []
    # Settled again (the same text): nothing changes.
    assert await transcripts.settle(hearing.id, {first.id: "我叫赵某。"}, []) == ([], [])

    # Once the clerk edits the record's structure, settling no longer touches it.
    await transcripts.edit(hearing.id, RecordEdit("delete", (lines[3].id,)), "clerk:刘")
    assert await transcripts.settle(hearing.id, {second.id: "我是被告人。"}, [
        SpokenLine(party, 12.0, 13.0, "好的。", "zh")]) == ([], [])
    _, live = await transcripts.of_hearing(hearing.id, 1)
    assert [li.text for li in live][1] == "我是被告。" and len(live) == 4

    # Nor once the judge has sealed it.
    for action in (HearingAction.OPEN, HearingAction.START, HearingAction.CLOSE):
        await registry.transition(hearing.id, action, ACTOR)
    await transcripts.seal(hearing.id, "system")
    await transcripts.seal_by_judge(hearing.id, ACTOR, None)
    assert await transcripts.settle(hearing.id, {first.id: "改"}, []) == ([], [])
    with pytest.raises(RecordSealed):
        await transcripts.correct(hearing.id, first.id, "改", "clerk:刘")
    assert await transcripts.verify() == []
