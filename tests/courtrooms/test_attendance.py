"""The attendance read back from the audit: absences with causes, walk-outs apart from network
failures, warnings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from courtrooms.attendance import attendance
from courtrooms.models import AuditEvent, Location, Participant, Role

T0 = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)  # 09:00 in Beijing
HEARING = uuid.uuid4()


def person(name: str, role: Role) -> Participant:
    return Participant(id=uuid.uuid4(), hearing_id=HEARING, name=name, role=role,
                       location=Location.REMOTE)


def events(*rows: tuple[int, str, Participant | None, dict[str, object]]) -> list[AuditEvent]:
    out = []
    for seq, (minute, action, who, data) in enumerate(rows, 1):
        body = dict(data)
        if who is not None:
            body["participant_id"] = str(who.id)
        out.append(AuditEvent(seq=seq, at=T0 + timedelta(minutes=minute), actor="judge",
                              action=action, hearing_id=HEARING, data=body, prev_hash="",
                              hash=str(seq)))
    return out


def test_walk_outs_network_failures_and_replacements_are_told_apart():
    judge, defendant, lawyer, witness = (
        person("王法官", Role.JUDGE), person("张三", Role.DEFENDANT),
        person("李律师", Role.LAWYER), person("赵证人", Role.WITNESS))
    log = events(
        (0, "attendance.joined", judge, {}),
        (1, "attendance.joined", defendant, {}),
        (1, "attendance.joined", lawyer, {}),
        (2, "attendance.left", defendant, {"cause": "left"}),  # before the session: no walk-out
        (3, "attendance.joined", defendant, {}),
        (5, "hearing.start", None, {}),
        (10, "attendance.left", defendant, {"cause": "network_lost"}),
        (11, "attendance.joined", defendant, {}),
        (12, "attendance.left", lawyer, {"cause": "replaced"}),  # another tab: no absence
        (12, "attendance.joined", lawyer, {}),
        (20, "participant.warned", defendant, {"reason": "请勿离开"}),
        (21, "attendance.left", defendant, {"cause": "page_closed"}),
        (25, "hearing.recess", None, {}),
        (26, "attendance.left", lawyer, {"cause": "left"}),  # at the recess: no walk-out
        (30, "hearing.close", None, {}),
        (30, "attendance.left", judge, {"cause": "hearing_ended"}),
    )
    report = {a.name: a for a in attendance(log, [judge, defendant, lawyer, witness])}

    d = report["张三"]
    assert d.joined_first == T0 + timedelta(minutes=1) and d.joins == 3
    assert [(a.cause, a.in_session, a.walk_out) for a in d.absences] == [
        ("left", False, False), ("network_lost", True, False), ("page_closed", True, True)]
    assert d.absences[1].returned_at == T0 + timedelta(minutes=11)
    assert d.absences[2].returned_at is None and not d.present
    assert d.walk_outs == 1 and d.network_failures == 1
    assert [(w.reason, w.by) for w in d.warnings] == [("请勿离开", "judge")]

    lawyer_a = report["李律师"]
    assert [a.cause for a in lawyer_a.absences] == ["left"] and lawyer_a.walk_outs == 0
    # The hearing's end sends everyone away: that is no absence.
    assert report["王法官"].absences == [] and report["王法官"].walk_outs == 0
    assert report["赵证人"].never_joined and report["赵证人"].joins == 0


def test_events_of_someone_not_invited_or_unreadable_are_ignored():
    judge = person("王法官", Role.JUDGE)
    stranger = person("X", Role.PARTY)
    log = events((0, "attendance.joined", stranger, {}),
                 (1, "attendance.left", None, {"participant_id": "not-a-uuid"}))
    [only] = attendance(log, [judge])
    assert only.never_joined and only.absences == []


def test_a_reload_is_no_walk_out_and_a_crash_is_no_session():
    defendant = person("张三", Role.DEFENDANT)
    log = events(
        (0, "hearing.start", None, {}),
        (1, "attendance.joined", defendant, {}),
        (2, "attendance.left", defendant, {"cause": "page_closed"}),
        (2.5, "attendance.joined", defendant, {}),  # reloaded: back within the minute
        (5, "hearing.interrupted", None, {}),  # the server died: recess until the court says
        (6, "attendance.left", defendant, {"cause": "left"}),
    )
    [d] = attendance(log, [defendant])
    assert [(a.cause, a.walk_out) for a in d.absences] == [
        ("page_closed", False), ("left", False)]
    # The wall time the server noted counts, not when the audit row was written.
    late = events((0, "attendance.joined", defendant, {"wall": T0.timestamp() - 30}))
    [again] = attendance(late, [defendant])
    assert again.joined_first == T0 - timedelta(seconds=30)
