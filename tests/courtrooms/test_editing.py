"""The clerk's structural edits of the trial record: pure edits of a version's lines, and
each edit stored as the record's next version (real SQLite and PostgreSQL), the earlier one
kept, every seal still verifying, nothing after the judge's seal."""

from __future__ import annotations

import uuid

import pytest

from courtrooms.editing import DraftLine, RecordEdit, apply
from courtrooms.errors import InvalidInput, RecordSealed
from courtrooms.lifecycle import HearingAction
from courtrooms.models import Location, Role
from courtrooms.registry import Registry
from courtrooms.schemas import ParticipantIn
from courtrooms.transcripts import SpokenLine, Transcripts, record_sha256
from tests.courtrooms.builders import ACTOR, make_hearing

JUDGE, PARTY = uuid.uuid4(), uuid.uuid4()


def line(who: uuid.UUID, start: float, end: float, text: str, words=()) -> DraftLine:
    return DraftLine(who, start, end, text, "zh", tuple(words), source=uuid.uuid4())


LINES = [line(JUDGE, 1.0, 3.0, "现在开庭。"),
         line(PARTY, 4.0, 6.0, "我叫赵某。"),
         line(PARTY, 6.5, 9.0, "我是被告人。",
              [("我是", 6.5, 7.5, 0.9), ("被告人。", 7.5, 9.0, 0.9)])]


def test_each_edit_gives_the_next_versions_lines() -> None:
    ids = [li.source for li in LINES]
    deleted = apply(LINES, RecordEdit("delete", (ids[1],)), "zh")
    assert [li.text for li in deleted] == ["现在开庭。", "我是被告人。"]
    spoken = apply(LINES, RecordEdit("speaker", (ids[0],), participant_id=PARTY), "zh")
    assert spoken[0].participant_id == PARTY and spoken[1:] == LINES[1:]
    inserted = apply(LINES, RecordEdit("insert", participant_id=JUDGE, text="请坐。",
                                       start=3.2, end=3.8), "zh")
    assert [li.text for li in inserted] == ["现在开庭。", "请坐。", "我叫赵某。", "我是被告人。"]
    merged = apply(LINES, RecordEdit("merge", (ids[2], ids[1])), "zh")
    assert [(li.text, li.start, li.end) for li in merged[1:]] == [
        ("我叫赵某。我是被告人。", 4.0, 9.0)]
    # A split cuts at the recognizer's word boundary when it gave word times.
    split = apply(LINES, RecordEdit("split", (ids[2],), at=2), "zh")
    assert [(li.text, li.start, li.end) for li in split[2:]] == [
        ("我是", 6.5, 7.5), ("被告人。", 7.5, 9.0)]
    # Without word times, in proportion to the characters.
    split = apply(LINES, RecordEdit("split", (ids[1],), at=3), "zh")
    assert [(li.text, li.start) for li in split[1:3]] == [("我叫赵", 4.0), ("某。", 5.2)]


@pytest.mark.parametrize(("edit", "field"), [
    (RecordEdit("delete", ()), "line_ids"),
    (RecordEdit("delete", (uuid.uuid4(),)), "line_ids"),
    (RecordEdit("merge", (LINES[0].source, LINES[2].source)), "line_ids"),  # not adjacent
    (RecordEdit("merge", (LINES[0].source, LINES[1].source)), "line_ids"),  # two speakers
    (RecordEdit("split", (LINES[1].source,), at=0), "at"),
    (RecordEdit("split", (LINES[1].source,), at=5), "at"),
    (RecordEdit("insert", participant_id=JUDGE, text=" ", start=1.0), "text"),
    (RecordEdit("insert", participant_id=JUDGE, text="x", start=2.0, end=1.0), "end"),
    (RecordEdit("insert", text="x", start=2.0), "participant_id"),
    (RecordEdit("speaker", (LINES[0].source,)), "participant_id"),
    (RecordEdit("rewrite", ()), "action"),
], ids=["delete-none", "delete-unknown", "merge-apart", "merge-speakers", "split-start",
        "split-end", "insert-empty", "insert-backwards", "insert-nobody", "speaker-nobody",
        "unknown-action"])
def test_a_wrong_edit_names_what_is_wrong(edit: RecordEdit, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        apply(LINES, edit, "zh")
    assert refused.value.field == field


async def test_edits_are_versions_kept_side_by_side_and_seals_still_verify(
    registry: Registry,
) -> None:
    hearing = await make_hearing(registry, 1, 2)
    people = {}
    for name, role in (("王审判", Role.JUDGE), ("赵某", Role.PARTY), ("监督", Role.OBSERVER)):
        issued = await registry.add_participant(hearing.id, ParticipantIn(
            name=name, role=role, location=Location.REMOTE), ACTOR)
        people[role] = issued.participant.id
    transcripts = Transcripts(registry.db, registry.clock)
    for who, start, text in ((Role.JUDGE, 1.0, "现在开庭。"), (Role.PARTY, 4.0, "我叫赵某。")):
        await transcripts.add(hearing.id, SpokenLine(people[who], start, start + 2, text, "zh"))
    for action in (HearingAction.OPEN, HearingAction.START, HearingAction.CLOSE):
        await registry.transition(hearing.id, action, ACTOR)
    await transcripts.seal(hearing.id, "system")  # as the server does at the close
    _, live = await transcripts.of_hearing(hearing.id)

    with pytest.raises(InvalidInput, match="observer"):
        await transcripts.edit(hearing.id, RecordEdit(
            "speaker", (live[0].id,), participant_id=people[Role.OBSERVER]), "clerk:刘")
    version, lines = await transcripts.edit(hearing.id, RecordEdit(
        "insert", participant_id=people[Role.JUDGE], text="请坐。", start=3.1, end=3.5,
        reason="漏记"), "clerk:刘")
    assert version == 2 and [li.text for li in lines] == ["现在开庭。", "请坐。", "我叫赵某。"]
    version, lines = await transcripts.edit(
        hearing.id, RecordEdit("delete", (lines[1].id,)), "clerk:刘")
    assert version == 3
    # Every version is kept as it was; the versions say who made each and how.
    _, first = await transcripts.of_hearing(hearing.id, 1)
    assert record_sha256(first) == record_sha256(live)
    _, second = await transcripts.of_hearing(hearing.id, 2)
    assert len(second) == 3
    versions = await transcripts.versions(hearing.id)
    assert [(v.version, v.lines, v.edit, v.made_by, v.from_version) for v in versions] == [
        (1, 2, None, None, None), (2, 3, "insert", "clerk:刘", 1), (3, 2, "delete", "clerk:刘", 2)]
    assert versions[1].reason == "漏记" and versions[1].at is not None
    # The seal at the close (version 1) still verifies; the newest version is what is read.
    assert await transcripts.verify() == []
    assert (await transcripts.of_hearing(hearing.id))[0] == 3
    # Once the judge seals the record, it takes no edits.
    await transcripts.seal_by_judge(hearing.id, ACTOR, None)
    with pytest.raises(RecordSealed):
        await transcripts.edit(hearing.id, RecordEdit("delete", (lines[0].id,)), "clerk:刘")
    assert await transcripts.verify() == []
