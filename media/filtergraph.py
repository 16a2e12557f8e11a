"""The review composite's picture: the tile layout, and the ffmpeg filter graph that draws the
tiles, their captions and placeholder cards, the recess card over the hearing timeline, and the
stamp (the case number and the court's wall clock, `media.stamp`) in a band along the bottom."""

from __future__ import annotations

import functools
import math
import re
import subprocess
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from media.composite_sources import Participant, Probe, Window, merge_windows, subtract_windows
from media.errors import CompositeError
from media.stamp import CLOCK_SAMPLE, Stamp, clock_spans, one_line

GUTTER_PX = 4
VIDEO_ASPECT = 16 / 9

BACKGROUND = "0x101418"
CARD = "0x2b2f36"
CAPTION_BAND = "0x000000"
RECESS_CARD = "0x1d2b3a"
RECESS_TITLE = "休庭 Recess"
FONT_PATTERN = "sans-serif:lang=zh-cn"

Rect = tuple[int, int, int, int]  # x, y, width, height in output pixels


@dataclass(frozen=True)
class Tile:
    """Where one participant appears: the picture area and the caption band below it."""

    video: Rect
    caption: Rect


def tile_layout(count: int, size: tuple[int, int]) -> list[Tile]:
    """Tiles for `count` participants on a `size` canvas, in reading order.

    The grid is the one that gives 16:9 pictures the most area; an incomplete last row is
    centred. Every coordinate is even, as 4:2:0 video needs.
    """
    if count < 1:
        raise CompositeError("a composite needs at least one participant")
    width, height = size
    best: tuple[float, int, int, int] | None = None
    for cols in range(1, count + 1):
        rows = math.ceil(count / cols)
        band = _caption_band(height, rows)
        cell_w, cell_h = width // cols, height // rows
        area_w, area_h = cell_w - GUTTER_PX, cell_h - GUTTER_PX - band
        if area_w <= 0 or area_h <= 0:
            continue
        picture = min(area_w, area_h * VIDEO_ASPECT) * min(area_h, area_w / VIDEO_ASPECT)
        candidate = (picture, -(rows * cols), cols, rows)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        raise CompositeError(f"{count} tiles do not fit a {width}x{height} picture")
    _, _, cols, rows = best
    band = _caption_band(height, rows)
    cell_w, cell_h = _even(width // cols), _even(height // rows)
    top = _even((height - rows * cell_h) // 2)
    tiles = []
    for i in range(count):
        row, col = divmod(i, cols)
        in_row = min(cols, count - row * cols)
        left = _even((width - in_row * cell_w) // 2)
        x = left + col * cell_w + GUTTER_PX // 2
        y = top + row * cell_h + GUTTER_PX // 2
        w, h = cell_w - GUTTER_PX, cell_h - GUTTER_PX
        tiles.append(Tile(video=(x, y, w, h - band), caption=(x, y + h - band, w, band)))
    return tiles


@dataclass(frozen=True)
class StampLayout:
    """Where the stamp goes: a band along the bottom (the tiles are laid out above it), the
    case number at its left, the clock ending `margin` from its right edge."""

    band: Rect
    fontsize: int
    margin: int

    @property
    def clock_x(self) -> str:
        """drawtext's x: the clock's right edge stays put whatever its width."""
        x, _, w, _ = self.band
        return f"{x + w - self.margin}-tw"

    @property
    def text_y(self) -> str:
        _, y, _, h = self.band
        return f"{y}+({h}-{self.fontsize})/2"


def stamp_layout(size: tuple[int, int]) -> StampLayout:
    width, height = size
    band = _even(min(40, max(20, height // 24)))
    return StampLayout((0, height - band, width, band), max(8, int(band * 0.6)),
                       max(4, width // 80))


def picture_area(size: tuple[int, int], *, stamped: bool) -> tuple[int, int]:
    """The part of the canvas the tiles (and the recess card) cover, from its top left."""
    return (size[0], stamp_layout(size).band[1]) if stamped else size


def _value(text: str) -> str:
    """Escape a filter option value for a filtergraph (ffmpeg-filters, "Notes on filtergraph
    escaping"): once for the option parser, once more for the graph parser."""
    text = re.sub(r"([\\':])", r"\\\1", text)
    return re.sub(r"([\\'\[\],;])", r"\\\1", text)


def _enable(windows: Sequence[Window]) -> str:
    return "+".join(f"between(t,{a:.3f},{b:.3f})" for a, b in windows) or "0"


def _caption_band(height: int, rows: int) -> int:
    return _even(min(48, max(20, height // (10 * rows))))


def _even(value: float) -> int:
    return int(value) // 2 * 2


def _text_em(text: str) -> float:
    """Rough rendered width in ems: CJK glyphs are square, Latin ones about half as wide."""
    return sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.6 for c in text)


class FilterGraph:
    """Writes the `-filter_complex_script` and the caption files it reads."""

    def __init__(
        self, work: Path, size: tuple[int, int], fps: int, end: float, font: Path,
        stamp: Stamp | None = None,
    ) -> None:
        self.work = work
        self.width, self.height = size
        self.fps = fps
        self.end = end
        self.font = font
        self.stamp = stamp
        self._texts = 0

    def _text_file(self, text: str) -> Path:
        # Captions are read from files: no escaping of user text, no %{} expansion either.
        self._texts += 1
        path = self.work / f"text{self._texts}.txt"
        path.write_text(text, encoding="utf-8")
        return path

    def _drawtext(self, text: str, box: Rect, size: float, *, centre: bool) -> str:
        x, y, w, h = box
        fit = (w - 2 * max(4, w // 40)) / max(_text_em(text), 1.0)
        fontsize = max(8, int(min(size, fit)))
        left = f"{x}+({w}-tw)/2" if centre else f"{x}+{max(4, w // 40)}"
        options = {
            "fontfile": str(self.font),
            "textfile": str(self._text_file(text)),
            "expansion": "none",
            "fontcolor": "white",
            "fontsize": str(fontsize),
            "x": left,
            "y": f"{y}+({h}-{fontsize})/2",
        }
        return "drawtext=" + ":".join(f"{k}={_value(v)}" for k, v in options.items())

    def _stamp(self) -> tuple[list[str], list[str]]:
        """The stamp: the case number, drawn once with the background, and the clock, drawn
        on every frame (last, over everything else)."""
        if self.stamp is None:
            return [], []
        layout = stamp_layout((self.width, self.height))
        x, y, w, h = layout.band
        fontsize, margin = layout.fontsize, layout.margin
        background = [_drawbox((x, y, w, h), CAPTION_BAND)]
        clocks = []
        clock_width = 0
        if self.stamp.origin is not None:
            spans = clock_spans(self.stamp.origin, self.end, self.stamp.zone)
            for span in spans:
                # The file's text is expanded: %{pts:...} becomes the time (`ClockSpan.text`).
                options = {
                    "fontfile": str(self.font),
                    "textfile": str(self._text_file(span.text())),
                    "expansion": "normal",
                    "fontcolor": "white",
                    "fontsize": str(fontsize),
                    "x": layout.clock_x,
                    "y": layout.text_y,
                }
                if len(spans) > 1:
                    options["enable"] = _enable([span.window])
                clocks.append("drawtext=" + ":".join(f"{k}={_value(v)}"
                                                     for k, v in options.items()))
                clock_width = max(clock_width, int(
                    _text_em(f"{CLOCK_SAMPLE} {span.label}") * fontsize) + 2 * margin)
        case_number = one_line(self.stamp.case_number)
        if case_number:
            background.append(self._drawtext(case_number, (x, y, w - clock_width, h), fontsize,
                                             centre=False))
        return background, clocks

    def _still(self, color: str, size: tuple[int, int], texts: Sequence[str]) -> str:
        """A picture drawn once and repeated at the output rate: a chain with no input.

        Repeating one frame costs nothing per frame, where `drawbox` and `drawtext` would
        redraw every frame (a filled `drawbox` costs milliseconds per frame)."""
        return ",".join([
            f"color=c={color}:s={size[0]}x{size[1]}:r={self.fps}",
            "format=yuv420p",
            "trim=end_frame=1",
            *texts,
            "loop=loop=-1:size=1",
            f"setpts=N/({self.fps}*TB)",
        ])

    def _card_text(self, caption: str, box: Rect) -> list[str]:
        """The placeholder's text: the caption, large, in the middle of the picture area."""
        return [self._drawtext(caption, box, box[3] * 0.12, centre=True)] if caption else []

    def build(
        self,
        participants: Sequence[Participant],
        probes: Sequence[Probe],
        recesses: Sequence[Window],
    ) -> Path:
        area_w, area_h = picture_area((self.width, self.height), stamped=self.stamp is not None)
        tiles = tile_layout(len(participants), (area_w, area_h))
        video_inputs = [p for p in probes if p.video_windows]
        covered = {
            person.participant_id: merge_windows([
                w for p in video_inputs for w in p.video_windows
                if p.source.participant_id == person.participant_id
            ])
            for person in participants
        }
        # The background: caption bands, and for each participant either the placeholder card
        # (never any picture) or black (letterbox bars), drawn once.
        background = []
        for person, tile in zip(participants, tiles, strict=True):
            if covered[person.participant_id]:
                background.append(_drawbox(tile.video, "black"))
            else:
                background.append(_drawbox(tile.video, CARD))
                background += self._card_text(person.caption, tile.video)
            background.append(_drawbox(tile.caption, CAPTION_BAND))
            if person.caption:
                background.append(self._drawtext(person.caption, tile.caption,
                                                 tile.caption[3] * 0.6, centre=False))
        stamp_background, clocks = self._stamp()
        background += stamp_background
        chains = [self._still(BACKGROUND, (self.width, self.height), background)
                  + f",trim=end={self.end:.3f}[base0]"]
        main, step = "base0", 0

        def overlay(layer: str, x: int | str, y: int | str, enable: str, extra: str = "") -> None:
            nonlocal main, step
            step += 1
            chains.append(f"[{main}][{layer}]overlay=x={x}:y={y}{extra}"
                          f":enable={_value(enable)}[base{step}]")
            main = f"base{step}"

        for person, tile in zip(participants, tiles, strict=True):
            windows = covered[person.participant_id]
            if not windows:
                continue
            x, y, w, h = tile.video
            uncovered = subtract_windows([(0.0, self.end)], windows)
            if uncovered:
                card = self._card_text(person.caption, (0, 0, w, h))
                chains.append(self._still(CARD, (w, h), card) + f"[card{step}]")
                # shortest: a still never ends, so the background's end is the output's.
                overlay(f"card{step}", x, y, _enable(uncovered), ":shortest=1")
            for probe in video_inputs:
                if probe.source.participant_id != person.participant_id:
                    continue
                index = video_inputs.index(probe) + 1  # input 0 is the audio pipe
                chains.append(
                    f"[{index}:v:0]setpts=PTS+{probe.source.offset:.6f}/TB,"
                    f"trim=end={self.end:.3f},"  # a file running past the end would extend it
                    f"scale=w={w}:h={h}:force_original_aspect_ratio=decrease"
                    f":force_divisible_by=2:flags=bilinear,setsar=1[pic{index}]"
                )
                # Centred, whatever size the scaled picture has (it may change mid-file).
                overlay(f"pic{index}", f"{x}+({w}-w)/2", f"{y}+({h}-h)/2",
                        _enable(probe.video_windows), ":eof_action=pass")
        for number, (start, end) in enumerate(recesses):
            # The stamp's band stays in sight: the case number, and the clock running on.
            title = (0, area_h // 2 - area_h // 8, area_w, area_h // 6)
            when = (0, area_h // 2 + area_h // 12, area_w, area_h // 12)
            texts = [
                self._drawtext(RECESS_TITLE, title, area_h / 9, centre=True),
                self._drawtext(f"{_clock(start)} – {_clock(end)}", when, area_h / 24,
                               centre=True),
            ]
            chains.append(self._still(RECESS_CARD, (area_w, area_h), texts)
                          + f"[recess{number}]")
            overlay(f"recess{number}", 0, 0, _enable([(start, end)]), ":shortest=1")
        chains.append(f"[{main}]{','.join(clocks) or 'null'}[vout]")
        script = self.work / "graph.txt"
        script.write_text(";\n".join(chains) + "\n", encoding="utf-8")
        return script


def _drawbox(box: Rect, color: str) -> str:
    x, y, w, h = box
    return f"drawbox=x={x}:y={y}:w={w}:h={h}:color={color}:t=fill"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@functools.lru_cache(maxsize=1)
def chinese_font() -> Path:
    try:
        found = subprocess.run(
            ["fc-list", "--format=%{file}\n", ":lang=zh-cn"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.split()
        best = subprocess.run(
            ["fc-match", "--format=%{file}", FONT_PATTERN],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        raise CompositeError(f"fontconfig is not usable (fc-list, fc-match): {e}") from e
    if not found:
        raise CompositeError("no font with Chinese glyphs; install fonts-wqy-microhei")
    return Path(best if best in found else found[0])


