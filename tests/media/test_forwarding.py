"""Encoded forwarding without a network: publications, slots, keyframes and timelines."""

from __future__ import annotations

import asyncio
import time

import pytest

from media.forwarding import EncodedFrame, ForwardedTrack, Publication, is_keyframe

# Frame tag bit 0 = 0 and the start code: a key frame (640x360).
VP8_KEY = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0x68, 0x01])
VP8_DELTA = bytes([0x11, 0x02, 0x00])


def video(ts: int, key: bool, age: float = 0.0, layer: int = 0,
          sync: bool = False) -> EncodedFrame:
    data = VP8_KEY if key else VP8_DELTA
    return EncodedFrame("video", "VP8", data, ts, key, time.monotonic() - age, layer, sync)


# Temporal layers of successive frames in L1T3: the base layer every fourth frame.
L1T3 = (0, 2, 1, 2)


def audio(ts: int) -> EncodedFrame:
    return EncodedFrame("audio", "opus", b"\xfc\xff\xfe", ts, True, time.monotonic())


def subscribed() -> tuple[Publication, ForwardedTrack, list[int]]:
    """A publisher's video, one subscriber's slot on it, and the keyframe requests that
    reached the publisher (one already: the slot asked on subscribing)."""
    publication = Publication("p1", "video")
    requests: list[int] = []
    publication.attach_source(lambda: requests.append(1) or True)
    track = ForwardedTrack("video")
    track.set_source(publication)
    return publication, track, requests


def test_keyframes_are_recognised():
    assert is_keyframe("VP8", VP8_KEY) and not is_keyframe("VP8", VP8_DELTA)
    assert is_keyframe("H264", b"\x00\x00\x00\x01\x67rest\x00\x00\x01\x65")
    assert not is_keyframe("H264", b"\x00\x00\x00\x01\x41slice")
    assert not is_keyframe("VP8", b"")
    # A key frame that lost its first packet (no start code) cannot start a picture.
    assert not is_keyframe("VP8", bytes([0x10, 0x02, 0x00]) + bytes(20))


async def test_a_new_subscriber_waits_for_a_keyframe_and_asks_for_one():
    publication, track, requests = subscribed()
    assert requests == [1]  # joining asked the publisher for a keyframe
    publication.push(video(3000, key=False))
    assert track.frames_dropped == 1
    publication.push(video(6000, key=True))
    publication.push(video(9000, key=False))
    first = await asyncio.wait_for(track.recv(), 1)
    second = await asyncio.wait_for(track.recv(), 1)
    assert bytes(first) == VP8_KEY and bytes(second) == VP8_DELTA
    assert second.pts - first.pts == 3000
    assert first.time_base.denominator == 90_000


async def test_subscriber_keyframe_requests_reach_the_publisher_rate_limited():
    publication, track, requests = subscribed()
    other = ForwardedTrack("video")
    other.set_source(publication)
    await asyncio.sleep(0.55)
    requests.clear()
    for _ in range(10):
        track.request_keyframe()  # a burst of PLIs from the subscriber
    assert len(requests) == 1
    await asyncio.sleep(0.55)
    track.request_keyframe()  # the same subscriber again: at most every 2 s per slot
    assert len(requests) == 1
    other.request_keyframe()  # another subscriber: the publisher's own limit (0.5 s) passed
    assert len(requests) == 2
    # The first subscriber joining, then these two (the second joined within 0.5 s).
    assert publication.keyframe_requests == 3


async def test_a_held_video_sends_nothing_and_comes_back_from_a_keyframe():
    publication, track, requests = subscribed()
    publication.push(video(3000, key=True))
    track.hold(True)
    assert track.held
    publication.push(video(6000, key=False))
    publication.push(video(9000, key=True))  # even a keyframe: held is held
    track.request_keyframe()  # a held slot's subscriber asks for nothing
    assert len(requests) == 1 and track.frames_dropped == 2
    await asyncio.sleep(0.55)
    track.hold(False)  # given back: the publisher is asked for a keyframe to start from
    assert len(requests) == 2
    publication.push(video(12000, key=False))
    publication.push(video(15000, key=True))
    first = await asyncio.wait_for(track.recv(), 1)
    assert bytes(first) == VP8_KEY
    # Audio is never held.
    voice = ForwardedTrack("audio")
    voice.hold(True)
    assert not voice.held


async def test_a_slot_that_falls_a_second_behind_starts_again_from_a_keyframe():
    publication, track, _requests = subscribed()
    await asyncio.wait_for(_recv_after(track, publication, video(3000, key=True)), 1)
    publication.push(video(6000, key=False, age=1.5))  # waited behind the pacer too long
    publication.push(video(9000, key=True))
    frame = await asyncio.wait_for(track.recv(), 1)
    assert bytes(frame) == VP8_KEY and track.frames_dropped >= 1


async def _recv_after(track: ForwardedTrack, publication: Publication,
                      frame: EncodedFrame) -> None:
    publication.push(frame)
    await track.recv()


async def test_taps_receive_only_what_is_on_the_record_and_subscribers_regardless():
    publication = Publication("p1", "audio")
    tapped = []
    publication.taps.append(tapped.append)
    track = ForwardedTrack("audio")
    track.set_source(publication)
    publication.push(audio(960))  # not on the record until the hearing's routing says so
    assert tapped == []
    publication.on_record = True
    publication.push(audio(1920))
    assert len(tapped) == 1
    first = await asyncio.wait_for(track.recv(), 1)
    second = await asyncio.wait_for(track.recv(), 1)
    assert second.pts - first.pts == 960


async def test_switching_source_keeps_the_outgoing_timeline_monotonic():
    a, b = Publication("a", "audio"), Publication("b", "audio")
    track = ForwardedTrack("audio")
    track.set_source(a)
    a.push(audio(1_000_000))
    a.push(audio(1_000_960))
    first = await track.recv()
    second = await track.recv()
    track.set_source(b)
    b.push(audio(5))  # another publisher's clock starts elsewhere entirely
    third = await track.recv()
    assert second.pts - first.pts == 960
    assert 0 < third.pts - second.pts <= 2 * 960
    assert track not in a.subscribers and track in b.subscribers


async def test_a_slow_subscriber_loses_oldest_frames_and_resyncs_on_a_keyframe():
    publication, track, requests = subscribed()
    publication.push(video(0, key=True))
    for i in range(1, 200):  # nobody reads: the queue overflows
        publication.push(video(i * 3000, key=False))
    assert track.frames_dropped > 0
    assert len(requests) >= 1
    await asyncio.sleep(0.55)
    publication.push(video(10**6, key=True))
    packet = await asyncio.wait_for(track.recv(), 1)
    assert bytes(packet) == VP8_KEY  # after overflow only a keyframe restarts the stream


async def test_stopped_track_ends_recv():
    from aiortc.mediastreams import MediaStreamError

    track = ForwardedTrack("audio")
    waiter = asyncio.create_task(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(waiter, 1)


async def test_a_keyframe_request_that_went_nowhere_is_repeated_while_frames_arrive():
    publication = Publication("p1", "video")
    ssrc_known = False
    sent = []

    def request() -> bool:  # like aiortc before the publisher's first packet: no SSRC
        if ssrc_known:
            sent.append(1)
        return ssrc_known

    publication.attach_source(request)
    track = ForwardedTrack("video")
    track.set_source(publication)
    assert sent == []
    ssrc_known = True
    publication.push(video(3000, key=False))
    assert sent == [1]
    publication.push(video(6000, key=False))
    assert sent == [1]  # rate-limited
    publication.push(video(9000, key=True))
    await asyncio.sleep(0.55)
    publication.push(video(12000, key=False))
    assert sent == [1]  # the keyframe came; no more requests


async def test_frames_queued_before_the_subscriber_connects_are_not_sent_late():
    publication, track, requests = subscribed()
    publication.push(video(3000, key=True, age=2.0))
    publication.push(video(6000, key=False, age=1.9))
    await asyncio.sleep(0.55)
    receiving = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.05)
    assert not receiving.done() and track.frames_dropped == 2
    assert len(requests) == 2  # asked again for a fresh keyframe
    publication.push(video(9000, key=False))
    publication.push(video(12000, key=True))
    packet = await asyncio.wait_for(receiving, 1)
    assert bytes(packet) == VP8_KEY


async def test_a_stale_keyframe_at_the_head_neither_hangs_nor_is_sent_late():
    publication, track, _requests = subscribed()
    publication.push(video(3000, key=True, age=1.5))  # waited behind the pacer too long
    publication.push(video(6000, key=False, age=1.4))
    receiving = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.05)  # the loop still runs: recv waits, it does not spin
    assert not receiving.done() and track.frames_dropped == 2
    publication.push(video(9000, key=True))
    frame = await asyncio.wait_for(receiving, 1)
    assert bytes(frame) == VP8_KEY


async def test_a_keyframe_request_held_back_by_the_slots_limit_is_asked_again():
    publication, track, requests = subscribed()
    publication.push(video(3000, key=True))
    await asyncio.wait_for(track.recv(), 1)
    track.request_keyframe()  # the subscriber lost the picture
    asked = len(requests)
    # Its queue overflows within the slot's 2 s: it needs a keyframe and may not ask yet.
    track._need_keyframe = True
    track._last_keyframe_request = time.monotonic() - 1.0
    publication.push(video(6000, key=False))
    assert len(requests) == asked
    track._last_keyframe_request = time.monotonic() - 2.5  # the limit passed
    await asyncio.sleep(0.55)  # and the publisher's own
    publication.push(video(9000, key=False))
    assert len(requests) == asked + 1  # asked again, not left frozen


async def sent_timestamps(track: ForwardedTrack) -> list[int]:
    """The outgoing timestamps of what the slot has queued (the first frame's is 3000, and
    they follow the publisher's)."""
    out = []
    while track._queue:
        out.append((await asyncio.wait_for(track.recv(), 1)).pts)
    return out


async def test_a_slot_sends_only_the_layers_its_link_carries_and_the_record_gets_all():
    publication, track, requests = subscribed()
    tapped: list[EncodedFrame] = []
    publication.taps.append(tapped.append)
    publication.on_record = True
    track.set_top_layer(0)
    for i in range(12):
        publication.push(video(3000 * (i + 1), key=i == 0, layer=L1T3[i % 4]))
    # One frame in four, on the publisher's timeline (a quarter of the frame rate), with
    # nothing asked of the publisher: a frame left out is no loss.
    assert await sent_timestamps(track) == [3000, 15000, 27000]
    assert track.frames_thinned == 9 and track.frames_dropped == 0 and len(requests) == 1
    assert len(tapped) == 12
    # Two layers: every other frame.
    track.set_top_layer(1)
    for i in range(12, 20):
        publication.push(video(3000 * (i + 1), key=False, layer=L1T3[i % 4],
                               sync=L1T3[i % 4] == 1))
    assert await sent_timestamps(track) == [39000, 45000, 51000, 57000]


async def test_going_up_waits_for_a_frame_that_refers_to_nothing_left_out():
    publication, track, requests = subscribed()
    track.set_top_layer(0)
    publication.push(video(3000, key=True))
    track.set_top_layer(2)
    # (layer, layer-sync): a frame of layer 1 or 2 that may refer to frames left out is not
    # sent; the layers come back one at a time, each from a layer-sync frame.
    frames = [(2, True), (1, False), (0, False), (1, True), (2, False), (2, True), (1, False)]
    for i, (layer, sync) in enumerate(frames):
        publication.push(video(3000 * (i + 2), key=False, layer=layer, sync=sync))
    sent = await sent_timestamps(track)
    assert [f for f, pts in zip(frames, [3000 * (i + 2) for i in range(7)], strict=True)
            if pts in sent] == [(0, False), (1, True), (2, True), (1, False)]
    assert len(requests) == 1  # no keyframe was asked for
    # Down again, then a keyframe: every layer follows it at once.
    track.set_top_layer(0)
    publication.push(video(30000, key=False, layer=2, sync=True))
    track.set_top_layer(2)
    publication.push(video(33000, key=True))
    publication.push(video(36000, key=False, layer=2))
    assert len(await sent_timestamps(track)) == 2


async def test_frames_of_a_publisher_without_layers_are_never_left_out():
    publication, track, _requests = subscribed()
    track.set_top_layer(0)
    for i in range(8):
        publication.push(video(3000 * (i + 1), key=i == 0))
    assert len(await sent_timestamps(track)) == 8 and track.frames_thinned == 0


def test_each_layers_rate_is_measured():
    publication = Publication("p1", "video")
    start = time.monotonic()
    for i in range(31):  # a second at 30 frames a second
        frame = video(3000 * i, key=False, layer=L1T3[i % 4])
        publication.push(EncodedFrame(
            "video", "VP8", bytes(1000 * (3 - frame.layer)), frame.timestamp, False,
            start + i / 30, frame.layer))
    assert [round(f) for f in publication.layer_fps] == [8, 8, 15]
    base, middle, top = publication.layer_bps
    assert base > middle > top > 0
    assert publication.bps == pytest.approx(base + middle + top)
