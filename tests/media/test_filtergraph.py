"""The composite's tile layout: every participant's picture and caption on the canvas, and the
stamp's band below them; user text kept out of the filter graph."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from media.composite_sources import CompositeSource, Participant, Probe
from media.filtergraph import FilterGraph, picture_area, stamp_layout, tile_layout
from media.stamp import Stamp


@pytest.mark.parametrize("count", range(1, 13))
def test_tiles_fit_the_picture_without_overlapping(count):
    tiles = tile_layout(count, (1280, 720))
    assert len(tiles) == count
    boxes = [t.video for t in tiles] + [t.caption for t in tiles]
    for x, y, w, h in boxes:
        assert x >= 0 and y >= 0 and x + w <= 1280 and y + h <= 720 and w > 0 and h > 0
        assert x % 2 == y % 2 == w % 2 == h % 2 == 0
    for i, (ax, ay, aw, ah) in enumerate(boxes):
        for bx, by, bw, bh in boxes[i + 1:]:
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay
    # A 16:9 picture fills at least a fifth of its share of the screen.
    share = 1280 * 720 / count
    for tile in tiles:
        w, h = tile.video[2], tile.video[3]
        assert min(w, h * 16 / 9) * min(h, w * 9 / 16) >= share / 5


def test_a_case_number_reaches_drawtext_only_through_a_file(tmp_path):
    """The graph never holds user text: a case number cannot end an option or a filter."""
    hostile = "(2026)京0105刑初1024号\n';[vout]%{pts}\\:x=0,"
    graph = FilterGraph(tmp_path, (1280, 720), 25, 10.0, Path("/fonts/a font.ttc"),
                        Stamp(hostile, 1_795_000_000.0, ZoneInfo("Asia/Shanghai")))
    source = CompositeSource(tmp_path / "a.webm", "judge", "审判长 张三", 0.0, 10.0)
    script = graph.build([Participant("judge", "审判长 张三")], [Probe(source, True)], [])
    text = script.read_text(encoding="utf-8")
    assert "刑初" not in text and "%{pts}" not in text and "\n';" not in text
    files = {p.read_text(encoding="utf-8") for p in tmp_path.glob("text*.txt")}
    assert "(2026)京0105刑初1024号 ';[vout]%{pts}\\:x=0," in files  # one line, as given
    clock = f"%{{pts:gmtime:{1_795_000_000 + 8 * 3600:.6f}:%Y-%m-%d %H\\:%M\\:%S}} 北京时间"
    assert clock in files
    assert text.count("expansion=normal") == 1  # the clock only


def test_a_stamped_composite_lays_its_tiles_out_above_the_band():
    layout = stamp_layout((1280, 720))
    x, y, w, h = layout.band
    assert (x, y + h, w) == (0, 720, 1280) and y % 2 == h % 2 == 0
    assert picture_area((1280, 720), stamped=True) == (1280, y)
    assert picture_area((1280, 720), stamped=False) == (1280, 720)
