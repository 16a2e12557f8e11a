"""Speech recognition of one utterance with faster-whisper, guarded against hallucinations.

Whisper invents text on silence, noise and music (credit lines, "Thank you for watching.").
Before decoding, faster-whisper's bundled Silero VAD must confirm speech; after decoding,
segments with poor confidence, repetition loops or known hallucination strings are dropped.
Blocking and CPU-heavy: call it from a worker thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment as WhisperSegment
from faster_whisper.transcribe import TranscriptionInfo
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from transcription import guards
from transcription.chinese import simplified, written_chinese
from transcription.errors import InvalidAudio
from transcription.labels import role_label
from transcription.model import (
    FRAMES_PER_S,
    FULL_WINDOW_FRAMES,
    EnoughWindows,
    WindowedWhisperModel,
)
from transcription.options import SAMPLE_RATE, TranscriptionOptions
from transcription.settling import (
    EDGE_FRAMES,
    HOP,
    WINDOW_FRAMES,
    NotYetHeard,
    SettleState,
    TrackAudio,
    TrackFeatures,
)

log = logging.getLogger(__name__)

# Steers the multilingual model to Simplified characters (Whisper mixes both otherwise).
SIMPLIFIED_PROMPT = "以下是普通话的句子。"
# Whisper's token budget for a prompt is 223 tokens; keep ours well inside it.
MAX_PROMPT_CHARS = 160
# Words of a Chinese hearing, so that Whisper writes them as a court does (质证, not 指正);
# after the case number and the names, as far as the prompt's budget allows.
LEGAL_VOCABULARY_ZH = (
    "审判长",
    "审判员",
    "人民陪审员",
    "书记员",
    "公诉人",
    "辩护人",
    "被告人",
    "被害人",
    "证人",
    "法庭调查",
    "举证",
    "质证",
    "法庭辩论",
    "最后陈述",
    "起诉书",
    "回避",
    "休庭",
    "宣判",
)
# Encoder window when fitting it to the utterance: at least this, and this far past its end.
MIN_WINDOW_S = 15.0
MIN_DRAFT_WINDOW_S = 10.0
WINDOW_MARGIN_S = 5.0
# The most tokens one decode may produce: 448 in all, the prompt taking up to 224 of them.
MAX_NEW_TOKENS = 200
# Audio either side of a line that reads like the prompt, decoded again without the prompt.
ECHO_CONTEXT_S = 0.5
# Tokens one window of a settling decode may produce (Whisper's whole budget: offline's).
MAX_WINDOW_TOKENS = 448
# A decode goes on to the audio after the last word it heard only when speech goes on this
# much further: what it decodes otherwise is silence, at the cost of another window.
TAIL_SPEECH_S = 0.25

Word = guards.Word

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
    """One of Whisper's segments, kept; times in seconds from the start of the audio given."""

    start: float
    end: float
    text: str
    words: tuple[tuple[str, float, float, float], ...]  # (word, start, end, probability)
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """Text the decode produced that the guards kept out of the record, and why."""

    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class Settled:
    """What one `settle` call decoded of a track: its segments, in seconds from track frame
    `origin`, which settle the track from `origin` up to `frame` (where the next begins)."""

    segments: tuple[Recognized, ...]
    language: str
    origin: int
    frame: int
    decode_s: float
    windows: int  # windows decoded (silent ones skipped are not)
    dropped: tuple[Rejected, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Recognition:
    """The outcome of one `transcribe` call."""

    segments: tuple[Recognized, ...]
    language: str
    duration: float
    speech_s: float  # how much speech Silero VAD found
    decode_s: float  # wall time of the decode (0 when Silero found no speech)
    dropped: tuple[Rejected, ...] = field(default=())  # what the guards kept out

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments).strip()


def build_prompt(
    language: str | None, case_number: str | None, speakers: Iterable[tuple[str, str]]
) -> str | None:
    """An initial prompt naming the case and the participants (name, role), so that Whisper
    spells them as written; for Chinese hearings it leads with a Simplified sentence and ends
    with the court's vocabulary. Whisper copies prompts out on non-speech: the recognizer's
    guards keep such copies out of the record."""
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
        terms = [term for term in LEGAL_VOCABULARY_ZH if term not in prompt]
        while terms and len(prompt) + len("、".join(terms)) + 1 > MAX_PROMPT_CHARS:
            terms.pop()
        prompt += "、".join(terms) + "。" if terms else ""
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

    @property
    def can_settle(self) -> bool:
        """Settling (`settle`) needs the model that takes its frames from a track."""
        return isinstance(self.model, WindowedWhisperModel)

    def language_for(self, language: str | None) -> str | None:
        """The language a decode will use: an English-only model always decodes English."""
        return language if self.multilingual else "en"

    def speech_spans(self, audio: np.ndarray) -> list[guards.Span]:
        """Where Silero VAD finds speech in float32 audio, in seconds; steady tones (beeps)
        it takes for speech are left out."""
        found = get_speech_timestamps(audio, self._vad, sampling_rate=SAMPLE_RATE)
        spans = [(span["start"] / SAMPLE_RATE, span["end"] / SAMPLE_RATE) for span in found]
        return [span for span in spans if not guards.tonal(audio, span)]

    def speech_seconds(self, audio: np.ndarray) -> float:
        """Seconds of speech Silero VAD finds in float32 audio."""
        return sum(end - start for start, end in self.speech_spans(audio))

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
        spans = self.speech_spans(samples) if samples.size else []
        speech = sum(end - start for start, end in spans)
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
            samples, language, initial_prompt, word_timestamps, frames, max_new_tokens, spans
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
                samples, language, initial_prompt, word_timestamps, None, max_new_tokens, spans
            )
        kept, dropped = self._guard(
            segments, info.language, samples, spans, initial_prompt, max_new_tokens, draft
        )
        decode_s = time.perf_counter() - began
        if dropped:
            log.debug("dropped as not in the audio: %r", dropped)
        return Recognition(tuple(kept), info.language, duration, speech, decode_s, tuple(dropped))

    def settle(self, audio: TrackAudio, state: SettleState, language: str,
               prompt: str | None, complete: bool, max_windows: int | None = None) -> Settled:
        """Decode a track from `state.frame` as offline faster-whisper decodes a recording (its
        own loop, options and 30 s windows, each conditioned on the text before), as far as
        the audio heard allows: up to the window that reaches past it, or to its end when
        `complete`, or `max_windows` decoded. A window in which Silero hears no speech is
        skipped, as offline skips it for no speech. Guarded like a live line; advances
        `state`."""
        if not isinstance(self.model, WindowedWhisperModel):
            raise TypeError("settling needs a WindowedWhisperModel")
        language = self.language_for(language) or language
        prompt_tokens = self._prompt_tokens(language, prompt)
        origin = state.frame
        began = time.perf_counter()
        decoded: list[list[WhisperSegment]] = []  # by window, in seconds from `origin`
        windows = 0
        while True:
            heard = audio.heard // HOP
            available = heard - state.frame
            if available <= 0 or (not complete and available < WINDOW_FRAMES + EDGE_FRAMES):
                break
            if max_windows is not None and windows >= max_windows:
                break
            if audio.kept_from > state.frame * HOP:
                # A gap with nothing heard (a recess; each part is its own recording): the
                # next part is decoded from its start, as a recording is, with the prompt.
                state.frame, state.tokens = audio.kept_from // HOP, None
            if not self._window_has_speech(audio, state.frame, heard):
                state.frame = min(heard, state.frame + WINDOW_FRAMES)
                continue
            extractor = self.model.feature_extractor.extractor
            features = TrackFeatures(extractor, audio, state, state.frame, complete)
            budget = None if max_windows is None else max_windows - windows
            found, ran_out, count = self._settle_windows(features, state, language,
                                                         prompt_tokens, budget)
            shift = (features.origin - origin) * HOP / SAMPLE_RATE
            decoded += [[_shifted(s, shift) for s in w] for w in found]
            windows += count
            if ran_out:
                break
        samples = audio.read(origin * HOP, max(state.frame, origin) * HOP)
        spans = self.speech_spans(samples) if samples.size else []
        kept: list[Recognized] = []
        dropped: list[Rejected] = []
        for window_segments in decoded:
            k, d = self._guard(window_segments, language, samples, spans, prompt,
                               MAX_WINDOW_TOKENS, False)
            kept += k
            dropped += d
        kept.sort(key=lambda r: r.start)
        return Settled(tuple(kept), language, origin, state.frame,
                       time.perf_counter() - began, windows, tuple(dropped))

    def _settle_windows(
        self, features: TrackFeatures, state: SettleState, language: str,
        prompt_tokens: list[int], budget: int | None,
    ) -> tuple[list[list[WhisperSegment]], bool, int]:
        """faster-whisper's loop from `features.origin` until it reaches audio not heard yet
        or has decoded `budget` windows (then True), a window without speech, or the end: its
        segments by window (in seconds from the origin), and how many windows it decoded.
        Leaves `state.frame` where the next window starts."""
        assert isinstance(self.model, WindowedWhisperModel)
        windows: list[list[WhisperSegment]] = []
        spent = False

        def wanted() -> bool:
            # Before each window after the first: one without speech is not decoded.
            nonlocal spent
            if budget is not None and len(features.windows) > budget:
                spent = True
                return False
            return self._window_has_speech(features.audio, features.origin
                                           + features.windows[-1])

        def window_done() -> None:
            last = windows[-1]
            tokens = [t for s in last for t in s.tokens]
            state.decoded(prompt_tokens, tokens, last[0].temperature)

        ran_out, refused = False, 0
        try:
            with (self.model.features_instead(features), self.model.encoder_frames(None),
                  self.model.windows_while(wanted)):
                generator, _ = self.model.transcribe(
                    np.zeros(HOP, dtype=np.float32), language=language, task="transcribe",
                    word_timestamps=True, condition_on_previous_text=True, vad_filter=False,
                    temperature=list(self.options.settle_temperatures),
                    initial_prompt=list(state.conditioned(prompt_tokens)))
                for segment in generator:
                    if windows and segment.seek == windows[-1][0].seek:
                        windows[-1].append(segment)
                        continue
                    if windows:
                        window_done()
                    windows.append([segment])
            state.frame = features.origin + features.shape[1] - 1  # the end of the track
        except NotYetHeard as e:
            state.frame, ran_out = e.frame, True
        except EnoughWindows:
            # The window the loop was about to decode is the next call's, or has no speech
            # (then it is settled past).
            state.frame = features.origin + features.windows[-1]
            if not spent:
                state.frame += WINDOW_FRAMES
            ran_out, refused = spent, 1
        if windows:
            window_done()
        return windows, ran_out, len(features.windows) - refused

    def _window_has_speech(self, audio: TrackAudio, frame: int, end: int | None = None) -> bool:
        """Silero hears speech in the 30 s window of the track from `frame` (up to `end`)."""
        last = frame + WINDOW_FRAMES if end is None else min(end, frame + WINDOW_FRAMES)
        sound = audio.read(frame * HOP, last * HOP)
        return self.speech_seconds(sound) * 1000 >= self.options.min_silero_speech_ms

    def _prompt_tokens(self, language: str, prompt: str | None) -> list[int]:
        if not prompt:
            return []
        tokenizer = Tokenizer(self.model.hf_tokenizer, self.multilingual, task="transcribe",
                              language=language)
        return list(tokenizer.encode(" " + prompt.strip()))

    def _guard(
        self,
        segments: list[WhisperSegment],
        language: str,
        samples: np.ndarray,
        spans: list[guards.Span],
        prompt: str | None,
        max_new_tokens: int,
        draft: bool,
    ) -> tuple[list[Recognized], list[Rejected]]:
        """Keep only what the audio holds (transcription/guards.py), in Simplified Chinese
        with a court's punctuation and numbers for Chinese."""
        duration = samples.size / SAMPLE_RATE
        dropped: list[Rejected] = []
        candidates: list[tuple[WhisperSegment, str, tuple[Word, ...]]] = []
        loops = 0
        for segment in segments:
            text, words = _valid(segment, duration)
            cut = guards.loop_end(text)
            if cut is not None:
                loops += 1
                dropped.append(Rejected("loop", text[cut:].strip()))
                text, words = text[:cut], _words_within(words, cut)
            lead, trail = guards.echo_edges(words, prompt, spans)
            if lead or trail:
                # The prompt's names appended to (or put before) what was said.
                kept_words = words[lead : len(words) - trail]
                echoed = words[:lead] + words[len(words) - trail :]
                dropped.append(Rejected("prompt echo", "".join(w for w, *_ in echoed).strip()))
                text, words = "".join(w for w, *_ in kept_words), kept_words
            candidates.append((segment, text, words))
        if loops == 0 and self._looped(segments, max_new_tokens):
            # A runaway decode without a loop to cut out: nothing of it can be trusted.
            return [], [Rejected("loop", text.strip()) for _, text, _ in candidates]
        kept: list[tuple[WhisperSegment, str, tuple[Word, ...]]] = []
        suspects: list[tuple[WhisperSegment, str, tuple[Word, ...]]] = []
        for segment, text, words in candidates:
            text = text.strip()
            reason = self._rejection(segment, text, words, spans, duration)
            if reason is None and guards.prompt_coverage(text, prompt) >= guards.ECHO_COVERAGE:
                # Reads like the prompt: kept only if the audio says it without the prompt.
                if (
                    draft
                    or segment.no_speech_prob >= guards.ECHO_NO_SPEECH
                    or guards.mean_probability(words) < guards.ECHO_WORD_PROBABILITY
                ):
                    reason = "prompt echo"
                else:
                    suspects.append((segment, text, words))
                    continue
            if reason is None:
                kept.append((segment, text, words))
            elif text:
                dropped.append(Rejected(reason, text))
        for segment, text, words in suspects:
            heard = self._unprompted(samples, language, segment, words, spans, dropped)
            said = " ".join(said for _, said, _ in heard)
            said = simplified(said) if language == "zh" else said
            if guards.agreement(text, said) >= guards.ECHO_AGREEMENT:
                kept.append((segment, text, words))  # said: the prompt's spelling is the court's
            else:
                # Not what the audio says: what it says without the prompt takes its place.
                dropped.append(Rejected("prompt echo", text))
                kept.extend(heard)
        kept.sort(key=lambda item: item[0].start)
        recognized = [_recognized(s, text, words, language, duration) for s, text, words in kept]
        return recognized, dropped

    def _rejection(
        self,
        segment: WhisperSegment,
        text: str,
        words: tuple[Word, ...],
        spans: list[guards.Span],
        duration: float,
    ) -> str | None:
        """Why a segment is not in the audio, or None."""
        opts = self.options
        if is_hallucination(text):
            return "hallucination"
        if guards.compression_ratio(text) > opts.compression_ratio_threshold:
            return "compression"
        if segment.avg_logprob < opts.log_prob_threshold:
            return "log probability"
        if (words and segment.no_speech_prob >= guards.DOUBT_NO_SPEECH
                and guards.mean_probability(words) < guards.DOUBT_WORD_PROBABILITY):
            return "doubtful"
        start, end = _span(segment, words, duration)
        if words and guards.heard_share(words, spans) < guards.HEARD_SHARE:
            return "no speech under it"
        speech = guards.speech_near(spans, start, end, guards.SPEECH_MARGIN_S)
        if speech <= 0:
            return "no speech under it"
        if guards.too_fast(text, speech):
            return "more text than speech"
        return None

    def _unprompted(
        self,
        samples: np.ndarray,
        language: str,
        segment: WhisperSegment,
        words: tuple[Word, ...],
        spans: list[guards.Span],
        dropped: list[Rejected],
    ) -> list[tuple[WhisperSegment, str, tuple[Word, ...]]]:
        """The segment's audio decoded again without the prompt, through the same guards."""
        duration = samples.size / SAMPLE_RATE
        start, end = _span(segment, words, duration)
        lo = max(0, int((start - ECHO_CONTEXT_S) * SAMPLE_RATE))
        hi = min(samples.size, int((end + ECHO_CONTEXT_S) * SAMPLE_RATE))
        clip = samples[lo:hi]
        frames = None
        if self.options.fit_encoder_window and isinstance(self.model, WindowedWhisperModel):
            needed = math.ceil(max(clip.size / SAMPLE_RATE + WINDOW_MARGIN_S, MIN_WINDOW_S))
            frames = min(FULL_WINDOW_FRAMES, needed * FRAMES_PER_S)
        max_new_tokens = min(
            MAX_NEW_TOKENS, int(8 + self.options.max_tokens_per_s * clip.size / SAMPLE_RATE)
        )
        decoded, _ = self._decode(clip, language, None, bool(words), frames, max_new_tokens)
        heard = []
        for found in decoded:
            shifted = _shifted(found, lo / SAMPLE_RATE)
            text, found_words = _valid(shifted, duration)
            cut = guards.loop_end(text)
            if cut is not None:
                text, found_words = text[:cut], _words_within(found_words, cut)
            text = text.strip()
            reason = self._rejection(shifted, text, found_words, spans, duration)
            middle = sum(_span(shifted, found_words, duration)) / 2
            if reason is None and start - ECHO_CONTEXT_S / 2 <= middle <= end + ECHO_CONTEXT_S / 2:
                heard.append((shifted, text, found_words))
            elif reason is not None and text:
                dropped.append(Rejected(reason, text))
        return heard

    def _looped(self, segments: list[WhisperSegment], max_new_tokens: int) -> bool:
        """A repetition loop: the compression check, or text (plus a timestamp pair per
        segment) filling the token budget, which catches loops too short to compress well."""
        return sum(len(s.tokens) + 2 for s in segments) >= max_new_tokens or any(
            s.compression_ratio > self.options.compression_ratio_threshold for s in segments
        )

    def decode_options(self, language: str | None, prompt: str | None,
                       word_timestamps: bool) -> dict[str, Any]:
        """faster-whisper's `transcribe` options for these recognizer options (what an offline
        decode of a recording must use too, to be compared with the live one)."""
        opts = self.options
        return dict(
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
        )

    def _decode(
        self,
        samples: np.ndarray,
        language: str | None,
        prompt: str | None,
        word_timestamps: bool,
        frames: int | None,
        max_new_tokens: int,
        spans: list[guards.Span] | None = None,
    ) -> tuple[list[WhisperSegment], TranscriptionInfo]:
        """One decode; given the audio's speech `spans`, a window after the first is decoded
        only when speech ends more than `TAIL_SPEECH_S` after the last word heard."""
        kwargs = self.decode_options(language, prompt, word_timestamps)
        kwargs["max_new_tokens"] = max_new_tokens
        if not isinstance(self.model, WindowedWhisperModel):
            generator, info = self.model.transcribe(samples, **kwargs)
            return list(generator), info
        segments: list[WhisperSegment] = []
        speech_end = max((end for _, end in spans), default=0.0) if spans is not None else None

        def more_speech() -> bool:
            if speech_end is None:
                return True
            heard = max((w.end for s in segments for w in s.words or ()), default=None)
            heard = heard if heard is not None else max((s.end for s in segments), default=0.0)
            return speech_end > heard + TAIL_SPEECH_S

        with self.model.encoder_frames(frames), self.model.windows_while(more_speech):
            # The generator decodes lazily: consume it here, inside the window.
            generator, info = self.model.transcribe(samples, **kwargs)
            with contextlib.suppress(EnoughWindows):
                for segment in generator:
                    segments.append(segment)
        return segments, info


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


def _valid(segment: WhisperSegment, duration: float) -> tuple[str, tuple[Word, ...]]:
    """A segment's text and words without broken characters: the text is the words joined
    (as faster-whisper decoded them, leading spaces included) when there are words."""
    if not segment.words:
        return guards.valid_text(segment.text), ()
    words = guards.valid_words(
        (w.word, _clamp(w.start, duration), _clamp(w.end, duration), w.probability)
        for w in segment.words
    )
    return "".join(w for w, *_ in words), words


def _shifted(segment: WhisperSegment, offset: float) -> WhisperSegment:
    """A segment decoded from a clip, in the times of the whole audio."""
    moved = [
        dataclasses.replace(w, start=w.start + offset, end=w.end + offset)
        for w in segment.words or ()
    ]
    return dataclasses.replace(
        segment, start=segment.start + offset, end=segment.end + offset, words=moved or None
    )


def _words_within(words: tuple[Word, ...], cut: int) -> tuple[Word, ...]:
    """The words that lie within the first `cut` characters of their joined text."""
    out = []
    offset = 0
    for word in words:
        offset += len(word[0])
        if offset > cut:
            break
        out.append(word)
    return tuple(out)


def _span(segment: WhisperSegment, words: tuple[Word, ...], duration: float) -> tuple[float, float]:
    if words:
        return words[0][1], words[-1][2]
    return _clamp(segment.start, duration), _clamp(segment.end, duration)


def _recognized(
    segment: WhisperSegment, text: str, words: tuple[Word, ...], language: str, duration: float
) -> Recognized:
    start, end = _span(segment, words, duration)
    stripped = tuple((w.strip(), s, e, p) for w, s, e, p in words if w.strip())
    if language == "zh":
        text = written_chinese(text)
        stripped = tuple((simplified(w), s, e, p) for w, s, e, p in stripped)
    return Recognized(
        start=start,
        end=end,
        text=text,
        words=stripped,
        avg_logprob=segment.avg_logprob,
        no_speech_prob=segment.no_speech_prob,
        compression_ratio=segment.compression_ratio,
    )
