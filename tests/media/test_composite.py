"""The review composite, rendered by the real ffmpeg from real WebM recordings.

One 8-second hearing is rendered once for most tests: four participants, a recess from 4 s
to 6 s, and the judge's second segment after it. Files are made with ffmpeg like the
recorder's (VP8 + Opus in WebM, timestamps from the file's start).
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest

from media.composite import CompositeResult, render_composite
from media.composite_sources import CompositeSource
from media.errors import CompositeCancelled, CompositeError
from media.filtergraph import Tile, chinese_font, picture_area, stamp_layout, tile_layout
from media.stamp import Stamp
from tests.durable import fsynced
from tests.probe import ffprobe

TIMELINE_END = 8.0
RECESS = (4.0, 6.0)
CARD_RGB = (0x2B, 0x2F, 0x36)
RECESS_RGB = (0x1D, 0x2B, 0x3A)
# Where each beep starts on the hearing timeline: the source's offset plus the beep's instant
# in its file.
JUDGE_BEEP = 0.0 + 1.0
LAWYER_BEEP = 0.7 + 2.0
JUDGE_SECOND_BEEP = 6.0 + 0.5


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


VP8 = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "16", "-b:v", "600k"]
OPUS = ["-c:a", "libopus", "-b:a", "32k"]


def pattern(seconds: float, size: str = "640x360") -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=s={size}:r=30:d={seconds}"]


def beep(seconds: float, at: float | None) -> list[str]:
    """Mono 48 kHz silence with a 0.2 s 1 kHz beep starting `at` seconds in (if given)."""
    expr = f"if(between(t\\,{at}\\,{at + 0.2})\\,0.5*sin(2*PI*1000*t)\\,0)" if at else "0"
    return ["-f", "lavfi", "-i", f"aevalsrc={expr}:s=48000:d={seconds}"]


def make_recordings(root: Path) -> dict[str, Path]:
    files = {name: root / f"{name}.webm" for name in
             ("judge1", "judge2", "defendant", "prosecutor", "lawyer")}
    ffmpeg(*pattern(4), *beep(4, 1.0), *VP8, *OPUS, str(files["judge1"]))
    ffmpeg(*pattern(2), *beep(2, 0.5), *VP8, *OPUS, str(files["judge2"]))
    # The defendant's camera is off from 1.5 s to 3.0 s of the file: no frames, a timestamp gap.
    ffmpeg(*pattern(4), *beep(4, None), "-vf", "select='not(between(t,1.5,3.0))'",
           "-fps_mode", "passthrough", *VP8, *OPUS, str(files["defendant"]))
    # The prosecutor has no audio, the first frame comes 0.3 s into the file, and the picture
    # size changes mid-file (4:3, then 16:9).
    small, large = root / "small.webm", root / "large.webm"
    ffmpeg(*pattern(0.7, "320x240"), *VP8, str(small))
    ffmpeg(*pattern(0.8, "1280x720"), *VP8, str(large))
    (root / "parts.txt").write_text(f"file '{small}'\nfile '{large}'\n")
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(root / "parts.txt"), "-c", "copy",
           "-output_ts_offset", "0.3", str(files["prosecutor"]))
    # No camera at all; like the recorder, the file still declares a video stream.
    audio_only = root / "audio-only.webm"
    ffmpeg(*beep(4, 2.0), *OPUS, str(audio_only))
    with_empty_video_stream(audio_only, files["lawyer"])
    return files


def with_empty_video_stream(source: Path, target: Path) -> None:
    with av.open(str(source)) as src, av.open(str(target), "w", format="webm") as out:
        video = out.add_stream("libvpx", rate=30)
        video.width, video.height = 640, 360
        audio = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
    assert [s["codec_type"] for s in ffprobe(target)["streams"]] == ["video", "audio"]


@dataclass
class Hearing:
    files: dict[str, Path]
    sources: list[CompositeSource]
    result: CompositeResult
    progress: list[float]
    tiles: list[Tile]


@pytest.fixture(scope="module")
def hearing(tmp_path_factory: pytest.TempPathFactory) -> Hearing:
    root = tmp_path_factory.mktemp("composite")
    files = make_recordings(root)
    sources = [
        CompositeSource(files["judge1"], "judge", "审判长 张三", offset=0.0, duration=4.0),
        CompositeSource(files["defendant"], "defendant", "被告人 李四", offset=0.5, duration=3.5),
        CompositeSource(files["prosecutor"], "prosecutor", "公诉人 王五", offset=2.2,
                        duration=1.8),
        CompositeSource(files["lawyer"], "lawyer", "辩护人 赵六", offset=0.7, duration=3.3),
        CompositeSource(files["judge2"], "judge", "审判长 张三", offset=6.0, duration=2.0),
    ]
    progress: list[float] = []
    result = render_composite(sources, root / "composite.mp4", timeline_end=TIMELINE_END,
                              recesses=[RECESS], on_progress=progress.append)
    return Hearing(files, sources, result, progress, tile_layout(4, (1280, 720)))


def frames_at(path: Path, times: list[float]) -> dict[float, np.ndarray]:
    """RGB pictures of the composite at the given hearing times (the frame showing then)."""
    wanted = sorted(times)
    pictures: dict[float, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            shown = frame.time
            assert shown is not None
            while wanted and shown + 0.02 >= wanted[0]:
                pictures[wanted.pop(0)] = frame.to_ndarray(format="rgb24")
            if not wanted:
                break
    assert not wanted, f"no frame at {wanted}"
    return pictures


def region(picture: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = rect
    return picture[y:y + h, x:x + w].astype(np.float32)


def card_corner(tile: Tile) -> tuple[int, int, int, int]:
    """The top-left quarter of a picture area: placeholder card only, its text is centred."""
    x, y, w, h = tile.video
    return (x + 8, y + 8, w // 4, h // 4)


def looks_like(pixels: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return bool(pixels.std(axis=(0, 1)).max() < 4
                and np.abs(pixels.mean(axis=(0, 1)) - rgb).max() < 6)


def composite_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.sample_rate == 48_000
        chunks = [frame.to_ndarray()[0] for frame in container.decode(stream)]
    return np.concatenate(chunks)


def onset(samples: np.ndarray, after: float, threshold: float = 0.1) -> float:
    start = int(after * 48_000)
    loud = np.flatnonzero(np.abs(samples[start:]) > threshold)
    assert loud.size, f"no sound after {after} s"
    return (start + loud[0]) / 48_000


def test_the_composite_is_a_browser_playable_h264_aac_mp4_of_the_whole_timeline(hearing):
    info = ffprobe(hearing.result.path)
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert streams["video"]["pix_fmt"] == "yuv420p"
    assert (streams["video"]["width"], streams["video"]["height"]) == (1280, 720)
    assert streams["audio"]["codec_name"] == "aac"
    assert abs(float(info["format"]["duration"]) - TIMELINE_END) <= 0.1
    head = hearing.result.path.read_bytes()
    assert head.find(b"moov") < head.find(b"mdat")  # +faststart: playable while downloading
    assert hearing.result.participants == ("judge", "defendant", "prosecutor", "lawyer")
    assert hearing.result.duration == TIMELINE_END


def test_no_partial_file_is_left_beside_the_output(hearing):
    assert [p.name for p in hearing.result.path.parent.glob(".*partial")] == []


def test_progress_rises_to_one(hearing):
    assert len(hearing.progress) >= 3
    assert hearing.progress == sorted(set(hearing.progress))
    assert hearing.progress[0] == 0.0 and hearing.progress[-1] == 1.0
    assert all(p < 1.0 for p in hearing.progress[:-1])


def test_beeps_land_at_offset_plus_instant(hearing):
    audio = composite_audio(hearing.result.path)
    assert np.abs(audio[: int(0.9 * 48_000)]).max() < 0.05  # silence before the first beep
    assert abs(onset(audio, 0.0) - JUDGE_BEEP) <= 0.05
    assert abs(onset(audio, JUDGE_BEEP + 0.5) - LAWYER_BEEP) <= 0.05  # audio-only file
    assert abs(onset(audio, LAWYER_BEEP + 0.5) - JUDGE_SECOND_BEEP) <= 0.05  # after the recess
    recess = audio[int(4.1 * 48_000):int(5.9 * 48_000)]
    assert np.abs(recess).max() < 0.05


def test_tiles_show_video_only_while_a_file_covers_them(hearing):
    judge, defendant, prosecutor, lawyer = hearing.tiles
    at = frames_at(hearing.result.path, [0.25, 1.5, 2.4, 2.75, 3.4, 3.8, 5.0, 7.0])

    def shows_video(t: float, tile: Tile) -> bool:
        return bool(region(at[t], card_corner(tile)).std() > 20)

    def shows_card(t: float, tile: Tile) -> bool:
        return looks_like(region(at[t], card_corner(tile)), CARD_RGB)

    assert shows_video(0.25, judge) and shows_video(1.5, judge) and shows_video(3.4, judge)
    assert shows_video(7.0, judge)  # the second segment, after the recess
    assert shows_card(0.25, defendant) and shows_video(1.5, defendant)  # joins at 0.5 s
    assert shows_card(2.75, defendant)  # camera off from 2.0 s to 3.5 s on the timeline
    assert shows_video(3.8, defendant)
    assert shows_card(1.5, prosecutor) and shows_card(2.4, prosecutor)  # first frame at 2.5
    assert shows_video(2.75, prosecutor) and shows_video(3.4, prosecutor)
    for t in (0.25, 1.5, 2.75, 3.8, 7.0):
        assert shows_card(t, lawyer)  # audio only: always the card
    assert shows_card(7.0, defendant) and shows_card(7.0, prosecutor)  # their files ended


def test_a_picture_size_change_keeps_its_aspect_with_letterboxing(hearing):
    prosecutor = hearing.tiles[2]
    x, y, w, h = prosecutor.video
    # The size changes at 0.7 s of pictures, 3.2 s on the timeline (2.2 + 0.3 + 0.7).
    at = frames_at(hearing.result.path, [3.1, 3.3])
    # 320x240 (4:3) in a 16:9 area leaves wide black bars beside it; 1280x720 fills the width.
    bar = (x + w // 12, y + h // 4, 8, h // 2)
    assert region(at[3.1], bar).max() < 40
    assert region(at[3.3], bar).std() > 20 or region(at[3.3], bar).mean() > 40


def test_the_recess_card_shows_during_the_recess(hearing):
    at = frames_at(hearing.result.path, [3.8, 5.0])
    picture = at[5.0]
    assert looks_like(region(picture, (0, 0, 1280, 120)), RECESS_RGB)
    assert looks_like(region(picture, card_corner(hearing.tiles[0])), RECESS_RGB)
    title = region(picture, (400, 260, 480, 120))
    assert title.max() > 200  # white text of "休庭 Recess"
    assert not looks_like(region(at[3.8], (0, 0, 1280, 120)), RECESS_RGB)


def test_chinese_captions_render_as_distinct_glyphs(hearing, tmp_path):
    judge, defendant = hearing.tiles[:2]
    picture = frames_at(hearing.result.path, [1.5])[1.5]
    judge_caption = region(picture, judge.caption)
    defendant_caption = region(picture, defendant.caption)
    assert judge_caption.max() > 200 and defendant_caption.max() > 200
    # Same length, different characters: missing-glyph boxes would look the same.
    assert np.abs(judge_caption - defendant_caption).mean() > 3

    blank = CompositeSource(hearing.files["judge1"], "judge", "", offset=0.0, duration=4.0)
    named = CompositeSource(hearing.files["judge1"], "judge", "审判长 张三", offset=0.0,
                            duration=4.0)
    bands = []
    for source in (blank, named):
        out = tmp_path / f"single-{len(source.caption)}.mp4"
        render_composite([source], out, timeline_end=1.0)
        tile = tile_layout(1, (1280, 720))[0]
        bands.append(region(frames_at(out, [0.5])[0.5], tile.caption))
    assert bands[0].max() < 40  # an empty caption leaves the band black
    assert np.abs(bands[1] - bands[0]).mean() > 3


def test_cancel_stops_the_render_and_removes_the_partial_file(hearing, tmp_path):
    cancel = threading.Event()
    seen: list[float] = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if fraction > 0:
            cancel.set()

    out = tmp_path / "cancelled.mp4"
    source = CompositeSource(hearing.files["judge1"], "judge", "审判长 张三", 0.0, 4.0)
    with pytest.raises(CompositeCancelled):
        render_composite([source], out, timeline_end=600.0, on_progress=progress, cancel=cancel)
    assert seen and seen[-1] < 0.5
    assert list(tmp_path.iterdir()) == []


def test_a_render_cancelled_before_it_starts_writes_nothing(hearing, tmp_path):
    cancel = threading.Event()
    cancel.set()
    source = CompositeSource(hearing.files["judge1"], "judge", "审判长 张三", 0.0, 4.0)
    with pytest.raises(CompositeCancelled):
        render_composite([source], tmp_path / "x.mp4", timeline_end=4.0, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_a_typed_error_and_writes_nothing(hearing, tmp_path):
    good = CompositeSource(hearing.files["judge1"], "judge", "审判长 张三", 0.0, 4.0)
    not_media = tmp_path / "notes.webm"
    not_media.write_text("not a recording")
    out = tmp_path / "out.mp4"
    cases = [
        ([good], {"timeline_end": 0.0}),
        ([good], {"timeline_end": float("nan")}),
        ([], {"timeline_end": 4.0}),
        ([good], {"timeline_end": 4.0, "recesses": [(3.0, 2.0)]}),
        ([good], {"timeline_end": 4.0, "size": (1281, 720)}),
        ([CompositeSource(tmp_path / "missing.webm", "judge", "x", 0.0, 4.0)],
         {"timeline_end": 4.0}),
        ([CompositeSource(not_media, "judge", "x", 0.0, 4.0)], {"timeline_end": 4.0}),
        ([CompositeSource(good.path, "judge", "x", -1.0, 4.0)], {"timeline_end": 4.0}),
    ]
    for sources, kwargs in cases:
        with pytest.raises(CompositeError):
            render_composite(sources, out, **kwargs)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.webm"]


def test_the_composite_is_on_the_disk_before_it_is_in_place(hearing, tmp_path, monkeypatch):
    synced = fsynced(monkeypatch)
    out = tmp_path / "synced.mp4"
    source = CompositeSource(hearing.files["judge1"], "judge", "审判长 张三", 0.0, 2.0)
    render_composite([source], out, timeline_end=2.0)
    assert len(synced) == 2
    assert synced[0].name.endswith(".partial") and synced[0].parent == tmp_path
    assert synced[1] == tmp_path  # then the rename


# -- the stamp: the case number and the court's wall clock, burned in ---------------------------

HOSTILE_CASE = "(2026)京0105刑初1024号 '%{pts}\\:;[vout],x=0"
SIZE = (1280, 720)


def reference_band(text: str, tmp_path: Path) -> np.ndarray:
    """The stamp's band holding only `text` where the clock goes, drawn by drawtext from a file
    with expansion off: what the composite's band must show at that second."""
    layout = stamp_layout(SIZE)
    _, y, w, h = layout.band
    textfile = tmp_path / "reference.txt"
    textfile.write_text(text, encoding="utf-8")
    draw = (f"drawtext=fontfile={chinese_font()}:textfile={textfile}:expansion=none"
            f":fontcolor=white:fontsize={layout.fontsize}"
            f":x={layout.clock_x}:y={layout.text_y.replace(str(y), '0', 1)}")
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
         f"color=c=black:s={w}x{h}:r=25:d=0.04", "-vf", f"format=yuv420p,{draw}",
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True,
    )
    return np.frombuffer(result.stdout, np.uint8).reshape(h, w, 3).astype(np.float32)


def clock_region(picture: np.ndarray) -> np.ndarray:
    """The right half of the band, where the clock is."""
    _, y, w, h = stamp_layout(SIZE).band
    return region(picture, (w // 2, y, w - w // 2, h))


def case_region(picture: np.ndarray) -> np.ndarray:
    _, y, w, h = stamp_layout(SIZE).band
    return region(picture, (0, y, w // 2, h))


def reads(picture: np.ndarray, expected: str, others: list[str], tmp_path: Path) -> bool:
    """The clock shows `expected`: no pixel far from that text drawn alone, where the other
    readings differ in a digit's worth of pixels (a digit is a few dozen)."""
    shown = clock_region(picture)

    def wrong_pixels(text: str) -> int:
        reference = clock_region_of(reference_band(text, tmp_path))
        return int((np.abs(shown - reference).max(axis=2) > 64).sum())

    return wrong_pixels(expected) <= 2 and all(wrong_pixels(other) > 20 for other in others)


def clock_region_of(band: np.ndarray) -> np.ndarray:
    w = band.shape[1]
    return band[:, w // 2:]


def render_stamped(hearing: Hearing, tmp_path: Path, stamp: Stamp, name: str) -> Path:
    out = tmp_path / name
    source = CompositeSource(hearing.files["judge1"], "judge", "审判长 张三", 0.0, 4.0)
    render_composite([source], out, timeline_end=2.6, recesses=[(2.0, 2.6)], stamp=stamp)
    return out


def test_the_stamp_burns_in_the_case_number_and_the_courts_clock(hearing, tmp_path):
    # 09:31:05.5 Beijing time: the clock turns at 0.5 s, 1.5 s and 2.5 s on the timeline.
    origin = datetime(2026, 11, 23, 9, 31, 5, 500_000, tzinfo=ZoneInfo("Asia/Shanghai"))
    stamp = Stamp(HOSTILE_CASE, origin.timestamp(), ZoneInfo("Asia/Shanghai"))
    out = render_stamped(hearing, tmp_path, stamp, "stamped.mp4")
    at = frames_at(out, [0.2, 0.6, 1.0, 1.6, 2.4])

    # The clock's digits change from one second to the next, and only then.
    def changed(a: float, b: float) -> int:
        return int((np.abs(clock_region(at[a]) - clock_region(at[b])) > 64).sum())

    assert changed(0.6, 1.0) == 0 and changed(1.6, 2.4) == 0
    assert changed(0.2, 0.6) > 20 and changed(1.0, 1.6) > 20
    # It reads the court's local time, origin + t.
    day = "2026-11-23 09:31:"
    assert reads(at[0.2], f"{day}05 北京时间", [f"{day}06 北京时间"], tmp_path)
    assert reads(at[1.0], f"{day}06 北京时间", [f"{day}05 北京时间", f"{day}07 北京时间"],
                 tmp_path)
    assert reads(at[2.4], f"{day}07 北京时间", [f"{day}06 北京时间", f"{day}08 北京时间"],
                 tmp_path)  # in the recess: the clock runs on

    # The case number is there, drawn as given: its `%{pts}` is not expanded into a time.
    assert case_region(at[0.6]).max() > 200
    assert np.abs(case_region(at[0.2]) - case_region(at[2.4])).max() < 40
    plain = render_stamped(hearing, tmp_path,
                           Stamp("(2026)京0105刑初1024号", origin.timestamp(), stamp.zone),
                           "plain.mp4")
    assert np.abs(case_region(frames_at(plain, [0.6])[0.6]) - case_region(at[0.6])).mean() > 3

    # The tile sits above the band; during the recess the card leaves the band in sight.
    tile = tile_layout(1, picture_area(SIZE, stamped=True))[0]
    assert tile.caption[1] + tile.caption[3] <= stamp_layout(SIZE).band[1]
    assert region(at[1.0], card_corner(tile)).std() > 20
    assert looks_like(region(at[2.4], card_corner(tile)), RECESS_RGB)
    assert case_region(at[2.4]).max() > 200


def test_the_clock_follows_a_daylight_saving_change(hearing, tmp_path):
    berlin = ZoneInfo("Europe/Berlin")
    change = datetime(2026, 10, 25, 1, 0, 0, tzinfo=UTC).timestamp()  # 03:00 CEST -> 02:00 CET
    out = render_stamped(hearing, tmp_path, Stamp("", change - 1.5, berlin), "dst.mp4")
    at = frames_at(out, [0.2, 1.0, 2.0])
    before, after = "2026-10-25 02:59:59 UTC+02:00", "2026-10-25 02:00:00 UTC+01:00"
    assert reads(at[1.0], before, [after, "2026-10-25 03:00:00 UTC+02:00"], tmp_path)
    assert reads(at[2.0], after, [before, "2026-10-25 03:00:00 UTC+02:00"], tmp_path)
    assert case_region(at[1.0]).max() < 40  # no case number: the band is empty there
