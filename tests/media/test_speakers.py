"""The active speaker from audio levels: who counts, switching, hangover and hold."""

from __future__ import annotations

from media.speakers import ACTIVE_HOLD_S, HANGOVER_S, SPEECH_DBFS, ActiveSpeaker, Speakers

LOUD, QUIET, SILENT = -20.0, SPEECH_DBFS - 10, -127.0


def test_the_only_loud_participant_becomes_active_and_silence_is_not_speech():
    s = ActiveSpeaker()
    assert s.update({"a": SILENT, "b": QUIET}, 0.0) is None  # nothing changed: nobody speaks
    assert s.update({"a": LOUD, "b": QUIET}, 0.25) == Speakers("a", ("a",))


def test_gaps_between_words_do_not_flicker_and_the_speaker_is_held_after_silence():
    s = ActiveSpeaker()
    s.update({"a": LOUD}, 0.0)
    assert s.update({"a": SILENT}, HANGOVER_S / 2) is None  # still speaking: a pause
    after = s.update({"a": SILENT}, HANGOVER_S + 0.1)
    assert after == Speakers("a", ())  # stopped speaking, still shown as the last speaker
    assert s.update({"a": SILENT}, HANGOVER_S + ACTIVE_HOLD_S + 0.1) == Speakers(None, ())


def test_a_clearly_louder_speaker_takes_over_a_slightly_louder_one_does_not():
    s = ActiveSpeaker()
    s.update({"a": -30.0, "b": SILENT}, 0.0)
    assert s.update({"a": -30.0, "b": -27.0}, 0.25) == Speakers("a", ("a", "b"))
    assert s.update({"a": -30.0, "b": -20.0}, 0.5) == Speakers("b", ("a", "b"))


def test_a_participant_who_leaves_or_is_muted_stops_counting():
    s = ActiveSpeaker()
    s.update({"a": LOUD, "b": SILENT}, 0.0)
    assert s.update({"b": SILENT}, 0.25) == Speakers(None, ())
