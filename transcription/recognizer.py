"""Speech recognition of one utterance with faster-whisper, guarded against hallucinations.

Whisper invents text on silence, noise and music (credit lines, "Thank you for watching.").
Before decoding, faster-whisper's bundled Silero VAD must confirm speech; after decoding,
segments with poor confidence, repetition loops or known hallucination strings are dropped.
Blocking and CPU-heavy: call it from a worker thread, never on the event loop.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.transcribe import Segment, TranscriptionInfo
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from transcription.errors import InvalidAudio
from transcription.labels import role_label
from transcription.model import FRAMES_PER_S, FULL_WINDOW_FRAMES, WindowedWhisperModel
from transcription.options import SAMPLE_RATE, TranscriptionOptions

log = logging.getLogger(__name__)

# Steers the multilingual model to Simplified characters (Whisper mixes both otherwise).
SIMPLIFIED_PROMPT = "以下是普通话的句子。"
# Whisper's token budget for a prompt is 223 tokens; keep ours well inside it.
MAX_PROMPT_CHARS = 160
# Encoder window when fitting it to the utterance: at least this, and this far past its end.
MIN_WINDOW_S = 15.0
MIN_DRAFT_WINDOW_S = 10.0
WINDOW_MARGIN_S = 5.0
# The most tokens one decode may produce: 448 in all, the prompt taking up to 224 of them.
MAX_NEW_TOKENS = 200

# Text Whisper produces on non-speech, compared after `_normalize`. Anything containing one
# of these is dropped: credit lines and video-platform phrases never said in a courtroom.
HALLUCINATION_FRAGMENTS = (
    "amaraorg",
    "字幕由",
    "字幕志愿者",
    "字幕组",
    "字幕組",
    "中文字幕",
    "请不吝点赞",
    "点赞订阅转发打赏",
    "明镜与点点",
    "明鏡與點點",
    "优优独播剧场",
    "yoyotelevisionseriesexclusive",
    "thankyouforwatching",
    "thanksforwatching",
    "pleasesubscribe",
    "likeandsubscribe",
    "以下是普通话的句子",
)
# Dropped only when they are the whole of a segment: short sign-offs from video subtitles.
HALLUCINATION_TEXTS = frozenset({"谢谢观看", "感谢观看", "谢谢收看", "请订阅", "下集再见"})


@dataclass(frozen=True, slots=True)
class Recognized:
    """One recognized segment; times in seconds from the start of the audio given."""

    start: float
    end: float
    text: str
    words: tuple[tuple[str, float, float, float], ...]  # (word, start, end, probability)
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass(frozen=True, slots=True)
class Recognition:
    """The outcome of one `transcribe` call."""

    segments: tuple[Recognized, ...]
    language: str
    duration: float
    speech_s: float  # how much speech Silero VAD found
    decode_s: float  # wall time of the decode (0 when Silero found no speech)
    dropped: tuple[str, ...] = field(default=())  # texts dropped as unreliable

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments).strip()


def build_prompt(
    language: str | None, case_number: str | None, speakers: Iterable[tuple[str, str]]
) -> str | None:
    """An initial prompt naming the case and the participants (name, role), so that Whisper
    spells them as written; it leads with a Simplified sentence for Chinese hearings."""
    chinese = language == "zh"
    people: list[str] = []
    for name, role in speakers:
        label = role_label(role, "zh" if chinese else "en")
        person = f"{label}{name}" if chinese else f"{label} {name}"
        if name and person not in people:
            people.append(person)
    if chinese:
        prompt = SIMPLIFIED_PROMPT
        prompt += f"案号{case_number}。" if case_number else ""
        prompt += "、".join(people) + "。" if people else ""
    else:
        prompt = f"Case {case_number}. " if case_number else ""
        prompt += ", ".join(people) + "." if people else ""
    return prompt.strip()[:MAX_PROMPT_CHARS] or None


def _normalize(text: str) -> str:
    return "".join(
        ch for ch in text.lower() if not unicodedata.category(ch).startswith(("P", "S", "Z"))
    )


def is_hallucination(text: str) -> bool:
    """True for text Whisper is known to produce on non-speech."""
    normalized = _normalize(text)
    if not normalized:
        return True
    return normalized in HALLUCINATION_TEXTS or any(
        fragment in normalized for fragment in HALLUCINATION_FRAGMENTS
    )


class Recognizer:
    """Transcribes utterances with one faster-whisper model. Thread-safe; blocking (construct
    it off the event loop too)."""

    def __init__(self, model: WhisperModel, options: TranscriptionOptions | None = None) -> None:
        self.model = model
        self.options = options or TranscriptionOptions()
        self.multilingual = bool(model.model.is_multilingual)
        self._vad = VadOptions(
            threshold=self.options.silero_threshold,
            min_speech_duration_ms=self.options.min_silero_speech_ms,
            min_silence_duration_ms=100,
            speech_pad_ms=30,
        )
        # Creating the Silero session holds the GIL for a few hundred ms: do it now, at
        # start-up, rather than in the middle of a hearing.
        get_vad_model()

    def language_for(self, language: str | None) -> str | None:
        """The language a decode will use: an English-only model always decodes English."""
        return language if self.multilingual else "en"

    def speech_seconds(self, audio: np.ndarray) -> float:
        """Seconds of speech Silero VAD finds in float32 audio."""
        spans = get_speech_timestamps(audio, self._vad, sampling_rate=SAMPLE_RATE)
        return sum(span["end"] - span["start"] for span in spans) / SAMPLE_RATE

    def transcribe(
        self,
        audio: np.ndarray,
        language: str | None = None,
        initial_prompt: str | None = None,
        word_timestamps: bool = True,
        *,
        draft: bool = False,
    ) -> Recognition:
        """Recognize 16 kHz mono audio (int16 PCM or float32 in [-1, 1]).

        `language` None lets the model detect it; an English-only model always decodes English.
        A `draft` (a partial result) is decoded faster and less carefully: a smaller encoder
        window and no second decode when the first looks like a loop.
        """
        samples = _as_float32(audio)
        duration = samples.size / SAMPLE_RATE
        language = self.language_for(language)
        speech = self.speech_seconds(samples) if samples.size else 0.0
        if speech * 1000 < self.options.min_silero_speech_ms:
            return Recognition((), language or "", duration, speech, 0.0)
        opts = self.options
        began = time.perf_counter()
        frames = None
        if opts.fit_encoder_window and isinstance(self.model, WindowedWhisperModel):
            # At least 15 s, and 5 s past the utterance. Shorter windows were measured to
            # lose first words or fall into repetition loops ("Please raise your right hand.
            # Please raise your right hand. ..."): Whisper is trained on windows that are
            # mostly padding after short speech.
            least = MIN_DRAFT_WINDOW_S if draft else MIN_WINDOW_S
            needed = math.ceil(max(duration + WINDOW_MARGIN_S, least)) * FRAMES_PER_S
            frames = min(FULL_WINDOW_FRAMES, needed)
        max_new_tokens = min(MAX_NEW_TOKENS, int(8 + opts.max_tokens_per_s * duration))
        segments, info = self._decode(
            samples, language, initial_prompt, word_timestamps, frames, max_new_tokens
        )
        if (
            not draft
            and frames is not None
            and frames < FULL_WINDOW_FRAMES
            and self._looped(segments, max_new_tokens)
        ):
            # Rare, and then the full 30 s window (what Whisper was trained on) usually decodes
            # cleanly: worth one more decode.
            segments, info = self._decode(
                samples, language, initial_prompt, word_timestamps, None, max_new_tokens
            )
        decode_s = time.perf_counter() - began
        kept: list[Recognized] = []
        dropped: list[str] = []
        if self._looped(segments, max_new_tokens):
            dropped.extend(s.text.strip() for s in segments)
            segments = []
        for segment in segments:
            text = segment.text.strip()
            if (
                segment.compression_ratio > opts.compression_ratio_threshold
                or segment.avg_logprob < opts.log_prob_threshold
                or is_hallucination(text)
            ):
                dropped.append(text)
                continue
            words = tuple(
                (w.word.strip(), _clamp(w.start, duration), _clamp(w.end, duration), w.probability)
                for w in segment.words or ()
                if w.word.strip()
            )
            if info.language == "zh":
                text = _simplified(text)
                words = tuple((_simplified(w), s, e, p) for w, s, e, p in words)
            kept.append(
                Recognized(
                    start=_clamp(words[0][1] if words else segment.start, duration),
                    end=_clamp(words[-1][2] if words else segment.end, duration),
                    text=text,
                    words=words,
                    avg_logprob=segment.avg_logprob,
                    no_speech_prob=segment.no_speech_prob,
                    compression_ratio=segment.compression_ratio,
                )
            )
        if dropped:
            log.debug("dropped as unreliable: %r", dropped)
        return Recognition(tuple(kept), info.language, duration, speech, decode_s, tuple(dropped))

    def _looped(self, segments: list[Segment], max_new_tokens: int) -> bool:
        """A repetition loop: the compression check, or text (plus a timestamp pair per
        segment) filling the token budget, which catches loops too short to compress well."""
        return sum(len(s.tokens) + 2 for s in segments) >= max_new_tokens or any(
            s.compression_ratio > self.options.compression_ratio_threshold for s in segments
        )

    def _decode(
        self,
        samples: np.ndarray,
        language: str | None,
        prompt: str | None,
        word_timestamps: bool,
        frames: int | None,
        max_new_tokens: int,
    ) -> tuple[list[Segment], TranscriptionInfo]:
        opts = self.options
        kwargs: dict[str, Any] = dict(
            language=language,
            task="transcribe",
            beam_size=opts.beam_size,
            best_of=opts.beam_size,
            temperature=list(opts.temperatures),
            compression_ratio_threshold=opts.compression_ratio_threshold,
            log_prob_threshold=opts.log_prob_threshold,
            no_speech_threshold=opts.no_speech_threshold,
            condition_on_previous_text=False,
            initial_prompt=prompt,
            word_timestamps=word_timestamps,
            vad_filter=False,
            max_new_tokens=max_new_tokens,
        )
        if isinstance(self.model, WindowedWhisperModel):
            with self.model.encoder_frames(frames):
                # The generator decodes lazily: consume it here, inside the window.
                generator, info = self.model.transcribe(samples, **kwargs)
                return list(generator), info
        generator, info = self.model.transcribe(samples, **kwargs)
        return list(generator), info


@functools.cache
def _t2s() -> Any:
    import opencc  # OpenCC's own binding; loads its dictionaries once

    return opencc.OpenCC("t2s")


def _simplified(text: str) -> str:
    """Traditional characters that slipped through the prompt, as Simplified (OpenCC)."""
    return str(_t2s().convert(text))


def _as_float32(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        raise InvalidAudio("audio must be a 1-D numpy array of 16 kHz mono samples")
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / 32768.0
    if audio.dtype == np.float32:
        return audio
    raise InvalidAudio(f"audio must be int16 or float32, got {audio.dtype}")


def _clamp(t: float, duration: float) -> float:
    return min(max(float(t), 0.0), duration)
