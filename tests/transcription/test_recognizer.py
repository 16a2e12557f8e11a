"""The recognizer with real tiny.en weights: expected words, and no text for non-speech."""

from __future__ import annotations

import numpy as np
import pytest

from tests.transcription.conftest import in_order, load_wav, references, word_errors, words
from transcription.errors import InvalidAudio
from transcription.recognizer import (
    SIMPLIFIED_PROMPT,
    Recognizer,
    build_prompt,
    is_hallucination,
)

SPEECH_FILES = [name for name, text in references().items() if text]
QUIET_FILES = [name for name, text in references().items() if not text]


@pytest.mark.parametrize("name", SPEECH_FILES)
def test_english_speech_gives_the_reference_words(tiny_recognizer: Recognizer, name: str) -> None:
    audio = load_wav(name)
    result = tiny_recognizer.transcribe(audio, "en")
    assert result.language == "en"
    # tiny.en hears espeak's "now in session" as "out in fashion": most words, in order.
    assert in_order(references()[name], result.text) >= 0.7, result.text
    assert word_errors(references()[name], result.text) <= 0.4, result.text
    duration = audio.size / 16_000
    previous = 0.0
    for segment in result.segments:
        assert 0.0 <= segment.start <= segment.end <= duration
        for word, start, end, probability in segment.words:
            assert word and 0.0 <= probability <= 1.0
            assert previous - 0.05 <= start <= end <= duration
            previous = start
    spoken = [w for s in result.segments for w, *_ in s.words]
    assert words(" ".join(spoken)) == words(result.text)


@pytest.mark.parametrize("name", QUIET_FILES)
def test_silence_and_noise_give_no_text(tiny_recognizer: Recognizer, name: str) -> None:
    result = tiny_recognizer.transcribe(load_wav(name), "en")
    assert result.segments == () and result.text == ""
    assert result.speech_s < 0.2


def test_int16_and_float32_audio_agree(tiny_recognizer: Recognizer) -> None:
    audio = load_wav("en_witness.wav")
    as_float = tiny_recognizer.transcribe(audio.astype(np.float32) / 32768.0, "en")
    assert as_float.text == tiny_recognizer.transcribe(audio, "en").text
    with pytest.raises(InvalidAudio):
        tiny_recognizer.transcribe(audio.astype(np.float64), "en")


def test_an_english_only_model_decodes_english_whatever_the_hearing_language(
    tiny_recognizer: Recognizer,
) -> None:
    assert not tiny_recognizer.multilingual
    assert tiny_recognizer.language_for("zh") == "en"
    assert tiny_recognizer.transcribe(load_wav("en_witness.wav"), "zh").language == "en"


def test_the_prompt_names_the_case_and_the_participants() -> None:
    prompt = build_prompt(
        "zh",
        "（2024）京0105刑初123号",
        [("张三", "judge"), ("李四", "defendant"), ("张三", "judge")],
    )
    assert prompt == f"{SIMPLIFIED_PROMPT}案号（2024）京0105刑初123号。审判员张三、被告人李四。"
    english = build_prompt("en", "2024-17", [("Ann Lee", "judge"), ("Bo Chen", "lawyer")])
    assert english == "Case 2024-17. Judge Ann Lee, Counsel Bo Chen."
    assert build_prompt("en", None, []) is None


@pytest.mark.parametrize(
    "text",
    [
        "字幕由 Amara.org 社群提供",
        "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
        "Thank you for watching.",
        "Thanks for watching!",
        "Subtitles by the Amara.org community",
        "谢谢观看",
        " ... ",
    ],
)
def test_known_hallucinations_are_recognized(text: str) -> None:
    assert is_hallucination(text)


@pytest.mark.parametrize("text", ["Thank you.", "谢谢审判长", "The court is now in session."])
def test_ordinary_sentences_are_not_hallucinations(text: str) -> None:
    assert not is_hallucination(text)


def test_traditional_characters_come_out_simplified() -> None:
    from transcription.recognizer import _simplified

    assert (
        _simplified("審判長宣佈開庭，被告人對起訴書有無異議？")
        == "审判长宣布开庭，被告人对起诉书有无异议？"
    )
