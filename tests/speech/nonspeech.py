"""The non-speech set, generated (no downloads, nothing committed but this code): audio a
courtroom microphone picks up that nobody says anything in. Every kind must give no line.

16 kHz mono int16, deterministic (seeded). `NON_SPEECH` maps a kind to its generator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RATE = 16_000


def _seconds(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * RATE)) / RATE


def _pcm(signal: np.ndarray, peak: float) -> np.ndarray:
    """Scaled so that its largest sample is `peak` of full scale."""
    top = float(np.max(np.abs(signal))) or 1.0
    return np.round(signal / top * peak * 32767).astype(np.int16)


def silence(seconds: float = 5.0, seed: int = 0) -> np.ndarray:
    """Near-digital silence: a microphone's self-noise about 80 dB below full scale."""
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(0, 3, int(seconds * RATE))).astype(np.int16)


def white_noise(seconds: float = 5.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _pcm(rng.normal(0, 1, int(seconds * RATE)), 0.3)


def pink_noise(seconds: float = 5.0, seed: int = 2) -> np.ndarray:
    """1/f noise (ventilation, a room's rumble): white noise shaped in the frequency domain."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    return _pcm(np.fft.irfft(spectrum, n), 0.4)


def chromium_beep(seconds: float = 5.0, seed: int = 0) -> np.ndarray:
    """Chromium's fake microphone (`--use-fake-device-for-media-stream`, media/audio's
    BeepingSource): every 500 ms, 20 ms of a 400 Hz square wave written as unsigned 8-bit
    samples 255 (high) and 128 (zero), so pulses from 0 to almost full scale; silence between.
    Played as WebRTC sends it, Opus keeps no DC: the pulses are centred."""
    t = _seconds(seconds)
    period = RATE // 400
    square = ((np.arange(t.size) % period) < period // 2).astype(np.float64) * (127 / 128)
    on = (t % 0.5) < 0.020
    signal = np.where(on, square - 0.5 * 127 / 128, 0.0)
    return np.round(signal * 32767).astype(np.int16)


def tone_beeps(seconds: float = 5.0, seed: int = 0) -> np.ndarray:
    """A 1 kHz beep of 200 ms each second (a test tone, a phone's key beep)."""
    t = _seconds(seconds)
    on = (t % 1.0) < 0.2
    return _pcm(np.where(on, np.sin(2 * np.pi * 1000 * t), 0.0), 0.5)


def _note(frequency: float, seconds: float) -> np.ndarray:
    """A plucked, piano-like note: harmonics with an attack and a decay."""
    t = _seconds(seconds)
    wave = sum(np.sin(2 * np.pi * frequency * k * t) / k**1.5 for k in range(1, 7))
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-3.0 * t)
    return np.asarray(wave * envelope)


def music(seconds: float = 8.0, seed: int = 3) -> np.ndarray:
    """Chords (C, Am, F, G) with a melody over them: music from someone's room."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE))
    semitone = 2 ** (1 / 12)
    chords = [(0, 4, 7), (-3, 0, 4), (-7, -3, 0), (-5, -1, 2)]
    beat = 0.5
    for i in range(int(seconds / beat)):
        at = int(i * beat * RATE)
        notes = []
        if i % 4 == 0:
            notes += [261.63 * semitone**s / 2 for s in chords[(i // 4) % 4]]
        notes.append(261.63 * semitone ** int(rng.choice([0, 2, 4, 5, 7, 9, 11, 12])))
        for frequency in notes:
            note = _note(frequency, min(2.0, seconds - i * beat))
            out[at : at + note.size] += note[: out.size - at]
    return _pcm(out, 0.6)


def keyboard(seconds: float = 5.0, seed: int = 4) -> np.ndarray:
    """Typing: clicks of a few ms (a resonant tick and a thud), 5 to 10 a second."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE))
    at = 0.1
    while at < seconds - 0.05:
        n = int(0.012 * RATE)
        t = np.arange(n) / RATE
        tick = rng.normal(0, 1, n) * np.exp(-t / 0.0015)
        tick += 0.5 * np.sin(2 * np.pi * rng.uniform(2000, 4000) * t) * np.exp(-t / 0.003)
        start = int(at * RATE)
        out[start : start + n] += tick * rng.uniform(0.5, 1.0)
        at += rng.uniform(0.1, 0.2)
    return _pcm(out, 0.5)


def coughs(seconds: float = 5.0, seed: int = 5) -> np.ndarray:
    """Coughs: bursts of band-limited noise (sharp onset, a 0.2-0.4 s decay, a voiced
    rasp), two or three to a fit."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE))
    at = 0.3
    while at < seconds - 0.6:
        for _ in range(int(rng.integers(2, 4))):
            length = rng.uniform(0.2, 0.4)
            n = int(length * RATE)
            t = np.arange(n) / RATE
            burst = np.fft.rfft(rng.normal(0, 1, n))
            f = np.fft.rfftfreq(n, 1 / RATE)
            burst *= np.exp(-(((f - 1200) / 900) ** 2))
            noise = np.fft.irfft(burst, n)
            rasp = 1 + 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(90, 140) * t))
            envelope = np.minimum(1.0, t / 0.008) * np.exp(-t / (length / 3))
            start = int(at * RATE)
            segment = out[start : start + n]
            segment += (noise * rasp * envelope)[: segment.size]
            at += length + rng.uniform(0.05, 0.15)
        at += rng.uniform(0.8, 1.5)
    return _pcm(out, 0.7)


NON_SPEECH: dict[str, Callable[..., np.ndarray]] = {
    "silence": silence,
    "white_noise": white_noise,
    "pink_noise": pink_noise,
    "chromium_beep": chromium_beep,
    "tone_beeps": tone_beeps,
    "music": music,
    "keyboard": keyboard,
    "coughs": coughs,
}
