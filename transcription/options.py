"""The knobs of live transcription, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_RATE = 16_000
WHISPER_WINDOW_S = 30.0


@dataclass(frozen=True, slots=True)
class TranscriptionOptions:
    """Utterance detection, decoding and scheduling settings for live transcription.

    Defaults are tuned for latency on a 2-core machine with the multilingual base model.
    """

    # webrtcvad: 0 (keeps most sound) to 3 (most aggressive at calling frames non-speech).
    vad_aggressiveness: int = 2
    frame_ms: int = 30
    # An utterance starts when this share of the frames in the last `onset_ms` are voiced.
    onset_ms: int = 150
    onset_ratio: float = 0.6
    # Audio kept from before the onset, so that soft first syllables are not clipped.
    pre_roll_ms: int = 300
    # An utterance ends after this much non-speech; that trailing audio stays in the utterance.
    hangover_ms: int = 300
    hangover_ratio: float = 0.9
    # Utterances with less voiced audio than this are clicks or coughs and are not decoded.
    min_speech_ms: int = 250
    # Longer speech is cut (at the last pause in the final `cut_search_ms`, else hard).
    max_utterance_s: float = 15.0
    cut_search_ms: int = 1_500
    # The piece after a cut starts this much before it (at most half the maximum length): a
    # word spoken across the cut is heard whole in one of the two pieces, and the stitching
    # keeps each word once.
    cut_overlap_s: float = 2.0

    # Decoding.
    beam_size: int = 1
    temperatures: tuple[float, ...] = (0.0, 0.4)
    # Encode only the audio an utterance needs instead of a padded 30 s window (the encoder
    # pass dominates decode time; see docs/benchmarks.md for the WER check against offline).
    fit_encoder_window: bool = True
    # Hallucination guards.
    silero_threshold: float = 0.5
    min_silero_speech_ms: int = 200
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    # Whisper emits a few tokens a second of speech; a runaway loop stops here.
    max_tokens_per_s: float = 15.0

    # Scheduling.
    partials: bool = True
    partial_interval_s: float = 1.0
    min_partial_s: float = 1.0
    # A partial is not started once the speaker has been quiet this long: the final is near.
    partial_quiet_ms: int = 150
    # Once the speaker has been quiet this long, their utterance so far is decoded while the
    # hangover runs out; when it does without another voiced frame, that decode is the
    # final's (the quiet after it is left out). 0: the final is decoded after the hangover.
    early_final_ms: int = 150
    # Settling: each participant's record decoded again behind the live lines, as offline
    # faster-whisper decodes the recording (30 s windows, a beam, the text before), to replace
    # the live lines of each span. A participant further behind than `settle_behind_s` is
    # skipped ahead (the live lines of what was skipped stay).
    settle: bool = True
    settle_behind_s: float = 600.0
    # A speaker whose audio has not come for this long has stopped for now (paused for a
    # private consultation, a recess, a lost link): what is heard of them is settled as a
    # whole. A shorter stall (a busy machine, a network hiccup) is waited out: settled then,
    # the decode would be cut where offline's is not ("his full name" became "his vote").
    settle_stall_s: float = 5.0
    # Offline faster-whisper's own fallback temperatures (its default), for settling.
    settle_temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    # Most of the inference thread's time that partials (all hearings together) may take.
    max_partial_share: float = 0.5
    # Final utterances held in memory per hearing; more wait in a spill file on disk.
    max_queued_utterances: int = 16
    # A speaker whose audio stops arriving mid-utterance (muted, track gone) is ended after this.
    stall_s: float = 1.0

    def __post_init__(self) -> None:
        if self.vad_aggressiveness not in (0, 1, 2, 3):
            raise ValueError("vad_aggressiveness must be 0, 1, 2 or 3")
        if self.frame_ms not in (10, 20, 30):
            raise ValueError("frame_ms must be 10, 20 or 30")
        if not 0 < self.max_utterance_s <= WHISPER_WINDOW_S:
            raise ValueError(f"max_utterance_s must be in (0, {WHISPER_WINDOW_S:g}]")
        if self.cut_overlap_s < 0:
            raise ValueError("cut_overlap_s must not be negative")
        if not 0 <= self.early_final_ms < self.hangover_ms:
            raise ValueError("early_final_ms must be at least 0 and less than hangover_ms")
        if self.hangover_ms < self.frame_ms or self.onset_ms < self.frame_ms:
            raise ValueError("onset_ms and hangover_ms must hold at least one frame")
        if self.max_queued_utterances < 1:
            raise ValueError("max_queued_utterances must be at least 1")
        if not 0 < self.max_partial_share <= 1:
            raise ValueError("max_partial_share must be in (0, 1]")
        if self.settle_behind_s < 2 * WHISPER_WINDOW_S:
            raise ValueError(f"settle_behind_s must be at least {2 * WHISPER_WINDOW_S:g}")
        if self.settle_stall_s < self.stall_s:
            raise ValueError("settle_stall_s must be at least stall_s")
        if not self.settle_temperatures:
            raise ValueError("settle_temperatures must not be empty")
        if self.beam_size < 1 or not self.temperatures:
            raise ValueError("beam_size must be at least 1 and temperatures non-empty")
