"""The live record's gaps as the record reports them (signaling.transcript)."""

from signaling.transcript import Gap, joined


def test_a_participants_touching_gaps_are_one_hole_in_the_record() -> None:
    """A transcriber that fails again right after its restart leaves a participant's gaps end
    to end; the record names the hole once. Others' gaps and separate ones stay apart."""
    gaps = [Gap("lawyer", 3.624, 7.009), Gap("judge", 1.0, 2.0), Gap("lawyer", 0.177, 3.624),
            Gap("lawyer", 20.0, None), Gap("judge", 2.2, None)]
    assert [(g.participant_id, g.start, g.end) for g in joined(gaps)] == [
        ("lawyer", 0.177, 7.009), ("judge", 1.0, None), ("lawyer", 20.0, None)]
    assert gaps[0].end == 7.009 and gaps[2].end == 3.624  # the live gaps are left as they were
