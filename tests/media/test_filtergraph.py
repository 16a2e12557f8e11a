"""The composite's tile layout: every participant's picture and caption on the canvas."""

from __future__ import annotations

import pytest

from media.filtergraph import tile_layout


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
