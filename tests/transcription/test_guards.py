"""The guards on their own: broken characters, loops, prompt echo, speech under a line.

The texts are the ones issue 14 found in trial records (lines copied from the prompt, loops,
a cut character); the recognizer tests run the same guards on real decodes.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.speech.nonspeech import NON_SPEECH
from tests.transcription.conftest import load_wav
from transcription import guards
from transcription.recognizer import build_prompt

ZH_PROMPT = build_prompt(
    "zh",
    "（2026）沪0101刑初1号",
    [("孙法官", "judge"), ("钱某某", "defendant"), ("李明", "clerk")],
)
EN_PROMPT = build_prompt(
    "en", "Hei 01 Xing Chu 77", [("Wang Li", "judge"), ("Robert Miller", "defendant")]
)


def test_a_word_cut_mid_character_is_dropped_and_no_replacement_character_remains() -> None:
    words = [("我", 0.0, 0.2, 0.9), ("认为", 0.2, 0.5, 0.9), ("我\ufffd", 0.5, 0.6, 0.2)]
    assert guards.valid_words(words) == (("我", 0.0, 0.2, 0.9), ("认为", 0.2, 0.5, 0.9))
    assert guards.valid_words([(" \ufffd", 0.0, 0.1, 0.1), ("\x00", 0.1, 0.2, 0.5)]) == ()
    assert guards.valid_text("我认为我\ufffd") == "我认为我"
    assert guards.valid_text("Yes\x07.") == "Yes."


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("我死了,我死了,我死了,我死了,我死了", "我死了"),
        ("我认为我认为我认为我认为", "我认为"),
        ("审判员王力、被告人钱某某某某某某某某某某", "审判员王力、被告人钱某"),
        ("刑刑刑刑刑刑刑刑", "刑"),
        ("I object. I think I think I think", "I object. I think"),
    ],
)
def test_a_repetition_loop_is_cut_after_its_first_occurrence(text: str, kept: str) -> None:
    end = guards.loop_end(text)
    assert end is not None and text[:end] == kept


@pytest.mark.parametrize(
    "text",
    [
        "对对对，是这样的。",
        "No, no, no. That is not what happened.",
        "谢谢审判长，谢谢。",
        "被告人钱某某，你对起诉书有没有异议？",
        "The court is now in session. The defendant will please state his full name.",
    ],
)
def test_speech_that_repeats_itself_a_little_is_not_a_loop(text: str) -> None:
    assert guards.loop_end(text) is None


@pytest.mark.parametrize(
    ("text", "prompt"),
    [
        ("Hei 01 Xing Chu 77. Judge Wang Li, Defendant Robert Miller.", EN_PROMPT),
        ("Case Hei 01 Xing Chu 77.", EN_PROMPT),
        ("刑初1号。", ZH_PROMPT),
        ("被告人钱某某。", ZH_PROMPT),
        ("审判员孙法官。", ZH_PROMPT),
        ("以下是普通话的句子。", ZH_PROMPT),
    ],
)
def test_lines_copied_from_the_prompt_read_like_it(text: str, prompt: str) -> None:
    assert guards.prompt_coverage(text, prompt) >= guards.ECHO_COVERAGE


@pytest.mark.parametrize(
    ("text", "prompt"),
    [
        ("The defendant will please state his full name for the record.", EN_PROMPT),
        ("Your honor, I have no further questions.", EN_PROMPT),
        ("被告人，你对起诉书指控的事实有没有异议？", ZH_PROMPT),
        ("甚至出现交易几乎停滞的情况。", ZH_PROMPT),
        ("是。", ZH_PROMPT),
    ],
)
def test_speech_that_names_someone_does_not_read_like_the_prompt(text: str, prompt: str) -> None:
    assert guards.prompt_coverage(text, prompt) < guards.ECHO_COVERAGE


def test_agreement_with_a_decode_without_the_prompt() -> None:
    assert guards.agreement("被告人钱某某。", "被告人前某某") >= guards.ECHO_AGREEMENT
    assert guards.agreement("审判员孙法官。", "谢谢观看") < guards.ECHO_AGREEMENT
    assert guards.agreement("Judge Wang Li.", "") == 0.0


def test_a_line_needs_speech_under_its_words() -> None:
    spans = [(1.0, 2.0)]
    words = [("The", 1.1, 1.3, 0.9), ("court", 1.3, 1.8, 0.9)]
    assert guards.heard_share(words, spans) == 1.0
    beeps = [("9444", 3.0, 3.4, 0.5), ("K1T2", 3.4, 3.9, 0.5)]
    assert guards.heard_share(beeps, spans) == 0.0
    assert guards.heard_share(beeps, []) == 0.0
    assert guards.speech_near(spans, 2.2, 2.5, guards.SPEECH_MARGIN_S) == pytest.approx(0.1)


def test_more_text_than_the_speech_could_hold() -> None:
    line = "Hei 01 Xing Chu 77. Judge Wang Li, Defendant Robert Miller."
    assert guards.too_fast(line, 0.5)
    assert not guards.too_fast(line, 3.0)
    assert guards.too_fast("审判员王力、被告人钱某某、审判员孙法官。", 1.0)
    assert not guards.too_fast("甚至出现交易几乎停滞的情况。", 3.5)


def test_compression_ratio_as_whisper_computes_it() -> None:
    assert guards.compression_ratio("刑" * 60) > 2.4
    assert guards.compression_ratio("The court is now in session.") < 2.4
    assert guards.compression_ratio("") == 0.0


def _whole(samples: np.ndarray) -> tuple[np.ndarray, guards.Span]:
    audio = samples.astype(np.float32) / 32768.0
    return audio, (0.0, audio.size / 16_000)


@pytest.mark.parametrize(
    "beeps",
    [
        load_wav("chromium_fake_beep.wav"),  # Chromium's fake microphone, really captured
        NON_SPEECH["chromium_beep"](),
        NON_SPEECH["tone_beeps"](),
    ],
)
def test_beeps_are_a_tone(beeps: np.ndarray) -> None:
    assert guards.tonal(*_whole(beeps))


@pytest.mark.parametrize(
    "name", ["en_opening.wav", "en_witness.wav", "zh_aishell_BAC009S0764W0121.wav"]
)
def test_speech_is_not_a_tone_even_over_mains_hum(name: str) -> None:
    speech = load_wav(name)
    assert not guards.tonal(*_whole(speech))
    t = np.arange(speech.size) / 16_000
    hum = (0.05 * 32767 * np.sin(2 * np.pi * 50 * t)).astype(np.int32)
    assert not guards.tonal(*_whole(np.clip(speech + hum, -32768, 32767).astype(np.int16)))


@pytest.mark.parametrize("kind", ["silence", "white_noise", "music", "keyboard", "coughs"])
def test_other_sounds_are_not_tones(kind: str) -> None:
    """Left to Silero, which finds no speech in any of them (test_recognizer)."""
    assert not guards.tonal(*_whole(NON_SPEECH[kind]()))


def test_mean_word_probability() -> None:
    echo = [("审判长", 0.0, 0.4, 0.02), ("书记员", 0.4, 0.8, 0.1), ("被告人", 0.8, 1.2, 0.15)]
    assert guards.mean_probability(echo) < guards.ECHO_WORD_PROBABILITY
    said = [("Judge", 0.0, 0.4, 0.9), ("Wang", 0.4, 0.6, 0.01), ("Li", 0.6, 0.8, 0.4)]
    assert guards.mean_probability(said) >= guards.ECHO_WORD_PROBABILITY
    assert guards.mean_probability([]) == 1.0


def test_the_prompts_names_appended_to_an_answer_are_cut_off() -> None:
    """'Yes.' then, over silence, the prompt's roster with little confidence: the roster goes."""
    spans = [(0.2, 0.7)]
    answer = [(" Yes.", 0.2, 0.6, 0.9)]
    roster = [(" Judge", 1.5, 1.8, 0.05), (" Wang", 1.8, 2.0, 0.01), (" Li,", 2.0, 2.2, 0.1)]
    roster += [
        (" Defendant", 2.3, 2.8, 0.1),
        (" Robert", 2.8, 3.0, 0.02),
        (" Miller.", 3.0, 3.3, 0.1),
    ]
    assert guards.echo_edges(answer + roster, EN_PROMPT, spans) == (0, len(roster))
    assert guards.echo_edges(roster + answer, EN_PROMPT, spans) == (len(roster), 0)
    # Said (speech under the names), or said with confidence: kept.
    said = [(w, s - 1.3, e - 1.3, p) for w, s, e, p in roster]
    assert guards.echo_edges(answer + said, EN_PROMPT, [(0.2, 2.1)]) == (0, 0)
    sure = [(w, s, e, 0.9) for w, s, e, _ in roster]
    assert guards.echo_edges(answer + sure, EN_PROMPT, spans) == (0, 0)
    # Chinese: "我没有异议。" and then the court's vocabulary over silence.
    zh = [("我", 0.1, 0.2, 0.9), ("没有", 0.2, 0.4, 0.9), ("异议。", 0.4, 0.6, 0.8)]
    vocabulary = [("审判", 1.2, 1.4, 0.02), ("长、", 1.4, 1.5, 0.1), ("书记员。", 1.5, 1.9, 0.05)]
    zh_prompt = build_prompt("zh", None, [("孙法官", "judge")])
    assert guards.echo_edges(zh + vocabulary, zh_prompt, [(0.0, 0.7)]) == (0, 3)
    assert guards.echo_edges(answer, EN_PROMPT, spans) == (0, 0)
    assert guards.echo_edges(answer + roster, None, spans) == (0, 0)
