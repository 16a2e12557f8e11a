"""A subscriber's downlink: the estimate from receiver reports, and which videos fit."""

from __future__ import annotations

import random

import pytest

from media.downlink import (
    AUDIO_SLOT_BPS,
    DELIVERED_MARGIN,
    HOLD_OFF_S,
    MIN_BPS,
    PROBE_MAX_S,
    LinkEstimate,
    VideoCandidate,
    VideoPlan,
)

AUDIO, VIDEO, PROBE = 1, 2, 3  # stream ids


def sending(link: LinkEstimate, bps: float, start: float, until: float) -> None:
    """Packets of 1000 bytes at `bps` from `start` to `until`."""
    t, step = start, 1000 * 8 / bps
    while t < until:
        link.sent(1000 - 28, t)  # the estimate adds the IP and UDP headers back
        t += step


def test_a_link_that_loses_nothing_is_never_limited():
    link = LinkEstimate()
    sending(link, 3_000_000, 0.0, 10.0)
    for t in range(1, 10):
        # Round trips wander (a busy machine), nothing is lost.
        link.report(AUDIO, 0.0, 0.020 + (t % 3) * 0.1, float(t))
    assert link.bps is None


def test_severe_loss_sets_the_estimate_to_what_got_through():
    link = LinkEstimate()
    sending(link, 2_400_000, 0.0, 3.0)
    link.report(VIDEO, 0.6, None, 3.0)
    assert link.bps == pytest.approx(2_400_000 * 0.4 * 0.9, rel=0.02)
    # Reports that follow describe the time before the decrease took effect.
    sending(link, 200_000, 3.0, 4.0)
    link.report(VIDEO, 0.6, None, 4.0)
    assert link.bps == pytest.approx(2_400_000 * 0.4 * 0.9, rel=0.02)


def test_a_probe_dropped_at_a_full_link_lowers_the_estimate_to_what_the_media_got_through():
    link = limited(1_200_000)  # as a probe made it grow
    sending(link, 900_000, 0.0, 3.0)  # media and the probe's padding
    # The bottleneck dropped most of the padding and none of the media: the link is full,
    # and it carried about what was sent.
    t = 3.0
    link.report(PROBE, 0.9, None, t, probe=True)
    link.report(AUDIO, 0.0, 0.05, t)
    assert link.congested_at == t
    assert link.bps == pytest.approx(900_000 * DELIVERED_MARGIN, rel=0.05)


@pytest.mark.parametrize("rtt_after, lowered", [(0.05, False), (0.25, True)],
                         ids=["steady-round-trip", "queue-building"])
def test_moderate_loss_lowers_the_estimate_only_with_a_queue_building(rtt_after, lowered):
    link = LinkEstimate()
    sending(link, 1_000_000, 0.0, 1.0)
    link.report(AUDIO, 0.0, 0.05, 1.0)
    sending(link, 1_000_000, 1.0, 2.0)
    link.report(AUDIO, 0.15, rtt_after, 2.0)
    # A lossy but wide link (radio, a bad cable): sending less would not help.
    assert (link.bps is not None) == lowered


def test_the_worst_stream_speaks_for_the_link():
    link = LinkEstimate()
    sending(link, 2_000_000, 0.0, 2.0)
    link.report(AUDIO, 0.0, 0.05, 1.9)
    link.report(VIDEO, 0.6, None, 2.0)
    lowered = link.bps
    assert lowered is not None
    # A clean audio report at the same moment does not make the video's loss go away.
    link.report(AUDIO, 0.0, 0.05, 2.1)
    assert link.loss == 0.6 and link.bps == lowered


def test_once_limited_a_queue_lowers_the_estimate_before_anything_is_lost():
    link = LinkEstimate()
    sending(link, 2_000_000, 0.0, 2.0)
    link.report(AUDIO, 0.0, 0.02, 1.0)
    link.report(VIDEO, 0.6, None, 2.0)
    first = link.bps
    assert first is not None
    sending(link, 800_000, 2.0, 5.0)
    link.report(AUDIO, 0.0, 0.15, 5.0)  # 130 ms over the least round trip seen
    assert link.bps == pytest.approx(800_000 * 0.85, rel=0.05) and link.bps < first


def test_a_clean_link_grows_eight_percent_a_second_up_to_one_and_a_half_what_is_sent():
    link = LinkEstimate()
    sending(link, 1_000_000, 0.0, 2.0)
    link.report(VIDEO, 0.6, None, 2.0)
    start = link.bps
    assert start is not None
    t = 2.0
    for _ in range(5):
        sending(link, start, t, t + 1.0)
        t += 1.0
        link.report(AUDIO, 0.0, None, t)
    assert link.bps == pytest.approx(start * 1.08 ** 4, rel=0.05)
    for _ in range(5):
        sending(link, start, t, t + 1.0)
        t += 1.0
        link.report(AUDIO, 0.0, None, t)
    assert link.bps == pytest.approx(start * 1.5, rel=0.05)
    # Sending little (videos held, no probe) the estimate stays where it was.
    for _ in range(30):
        sending(link, 100_000, t, t + 1.0)
        t += 1.0
        link.report(AUDIO, 0.0, None, t)
    assert link.bps == pytest.approx(start * 1.5, rel=0.05)


def test_the_estimate_never_falls_below_a_floor():
    link = LinkEstimate()
    sending(link, 20_000, 0.0, 1.0)
    link.report(AUDIO, 0.99, None, 1.0)
    assert link.bps == MIN_BPS


def videos(*rates: float) -> list[VideoCandidate]:
    """Videos of publishers that send no temporal layers, at these rates."""
    return [VideoCandidate(slot, f"p{slot}", (bps,)) for slot, bps in enumerate(rates)]


def layered(*rates: float) -> list[VideoCandidate]:
    """Videos of publishers sending three temporal layers (L1T3), each at these full rates:
    the base layer costs 40%, the first two 60% (libwebrtc's split; measured in practice)."""
    return [VideoCandidate(slot, f"p{slot}", (0.4 * bps, 0.6 * bps, bps))
            for slot, bps in enumerate(rates)]


def limited(bps: float) -> LinkEstimate:
    """A link whose estimate is `bps`, which it has been seen to carry."""
    link = LinkEstimate()
    link.bps = link.carried = bps
    return link


def test_nothing_is_held_on_a_link_with_no_limit_known():
    plan = VideoPlan()
    assert plan.decide(LinkEstimate(), videos(800_000, 800_000, 800_000), 3, 0.0) == set()


@pytest.mark.parametrize("kbit, held", [
    (3000, set()),
    (1800, {2}),  # two videos fit beside three voices
    (1000, {1, 2}),
    (300, {0, 1, 2}),  # the voices only
], ids=["3M", "1.8M", "1M", "300k"])
def test_the_least_important_videos_are_held_first(kbit, held):
    plan = VideoPlan()
    got = plan.decide(limited(kbit * 1000), videos(800_000, 800_000, 800_000), 3, 0.0)
    assert got == held
    budget = plan.video_budget(limited(kbit * 1000), 3)
    assert budget == max(MIN_BPS, kbit * 1000 - 3 * AUDIO_SLOT_BPS)


def test_a_held_video_comes_back_after_the_hold_off_once_the_link_has_room():
    plan = VideoPlan()
    link = limited(1_000_000)
    link.congested_at = 0.0
    assert plan.decide(link, videos(800_000, 800_000), 2, 0.0) == {1}
    # Room before the hold-off is over: still held, and no probing yet.
    link.bps = 2_500_000
    assert plan.decide(link, videos(800_000, 800_000), 2, HOLD_OFF_S[0] - 1) == {1}
    assert not plan.probing
    assert plan.decide(link, videos(800_000, 800_000), 2, HOLD_OFF_S[0] + 0.1) == set()


def test_without_room_the_link_is_probed_and_a_failed_try_waits_longer():
    plan = VideoPlan()
    link = limited(1_000_000)
    link.congested_at = 0.0
    plan.decide(link, videos(800_000, 800_000), 2, 0.0)
    t = HOLD_OFF_S[0] + 0.1
    assert plan.decide(link, videos(800_000, 800_000), 2, t) == {1}
    assert plan.probing  # padding fills the link to learn whether it carries more
    link.congested_at = t + 1.0  # the probe found the limit
    plan.decide(link, videos(800_000, 800_000), 2, t + 1.0)
    assert not plan.probing
    # The next try waits for the second, longer hold-off.
    plan.decide(link, videos(800_000, 800_000), 2, t + 1.0 + HOLD_OFF_S[0] + 0.1)
    assert not plan.probing
    plan.decide(link, videos(800_000, 800_000), 2, t + 1.0 + HOLD_OFF_S[1] + 0.1)
    assert plan.probing


def test_a_flowing_video_whose_rate_wobbles_keeps_its_place():
    plan = VideoPlan()
    link = limited(1_100_000)
    # Fits at its rate, though not with the headroom a returning video needs.
    assert plan.decide(link, videos(900_000), 3, 0.0) == set()
    assert plan.decide(link, videos(910_000), 3, 0.25) == set()


def test_the_importance_order_decides_who_keeps_their_video():
    plan = VideoPlan()
    link = limited(1_100_000)
    ordered = [VideoCandidate(2, "judge", (800_000,)), VideoCandidate(0, "lawyer", (800_000,))]
    assert plan.decide(link, ordered, 2, 0.0) == {0}


def test_a_probe_that_finds_no_room_gives_up_and_waits_longer():
    plan = VideoPlan()
    link = limited(300_000)
    link.congested_at = 0.0
    plan.decide(link, videos(800_000), 3, 0.0)
    t = HOLD_OFF_S[0] + 0.1
    plan.decide(link, videos(800_000), 3, t)
    assert plan.probing
    plan.decide(link, videos(800_000), 3, t + PROBE_MAX_S + 0.1)  # still no room
    assert not plan.probing
    plan.decide(link, videos(800_000), 3, t + PROBE_MAX_S + HOLD_OFF_S[0] + 0.2)
    assert not plan.probing  # the wait doubled
    plan.decide(link, videos(800_000), 3, t + PROBE_MAX_S + HOLD_OFF_S[1] + 0.2)
    assert plan.probing


def test_when_the_active_speaker_changes_their_video_takes_a_less_important_ones_place():
    plan = VideoPlan()
    link = limited(1_100_000)
    lawyer, judge = VideoCandidate(0, "lawyer", (800_000,)), VideoCandidate(1, "judge", (800_000,))
    # The lawyer speaks: their video is the one that fits.
    assert plan.decide(link, [lawyer, judge], 2, 0.0) == {1}
    # The judge speaks now: the judge's video comes first and takes the lawyer's place at
    # once (no hold-off: the link carries no more than before).
    assert plan.decide(link, [judge, lawyer], 2, 0.25) == {0}


def test_a_round_trip_that_grew_for_good_stops_counting_as_a_queue():
    link = LinkEstimate()
    sending(link, 2_000_000, 0.0, 2.0)
    link.report(AUDIO, 0.0, 0.02, 1.0)
    link.report(VIDEO, 0.6, None, 2.0)  # limited now
    lowered = link.bps
    t = 2.0
    # The route changes: every round trip is 150 ms longer from now on.
    for _ in range(40):
        sending(link, 600_000, t, t + 1.0)
        t += 1.0
        link.report(AUDIO, 0.0, 0.17, t)
    assert link.min_rtt == pytest.approx(0.17)
    assert link.queueing == pytest.approx(0.0)
    assert link.bps is not None and lowered is not None
    # It lowered the estimate while it looked like a queue, then grew again once the longer
    # round trip became the normal one.
    sending(link, 600_000, t, t + 3.0)
    for _ in range(3):
        t += 1.0
        link.report(AUDIO, 0.0, 0.17, t)
    assert link.bps > 600_000 * 0.85


def test_loss_that_sending_less_does_not_cure_is_the_links_own_and_holds_nothing_back():
    link = LinkEstimate()
    sending(link, 2_000_000, 0.0, 2.0)
    link.report(AUDIO, 0.0, 0.05, 1.0)
    link.report(VIDEO, 0.6, None, 2.0)  # a burst: looks like a full link
    assert link.bps is not None
    t = 2.0
    # A bad radio link: a fifth of the packets lost whatever is sent, the round trip steady.
    # The link may be narrower than the burst said: the estimate first goes down to what got
    # through of what is sent; the loss does not fall, so it is the link's own.
    lowest = link.bps
    while t < 16.0:
        sending(link, 300_000, t, t + 1.0)
        t += 1.0
        link.report(AUDIO, 0.2, 0.05, t)
        lowest = min(lowest, link.bps or lowest)
    assert lowest == pytest.approx(300_000 * 0.8 * DELIVERED_MARGIN, rel=0.05)
    assert link.bps is None  # no limit: every video comes back
    # And for a while even a severe burst is not taken for a full link.
    sending(link, 2_000_000, t, t + 1.0)
    link.report(VIDEO, 0.6, None, t + 1.0)
    assert link.bps is None


@pytest.mark.parametrize("kbit, cut, held", [
    (3000, {}, set()),
    (2200, {2: 2}, set()),  # the least important at a quarter of its frame rate
    (1000, {}, {1, 2}),  # one full video fits beside three voices
    (700, {0: 1}, {1, 2}),  # the most important at half its frame rate
    (500, {0: 2}, {1, 2}),  # ... at a quarter
    (300, {}, {0, 1, 2}),  # the voices only
], ids=["3M", "2.2M", "1M", "700k", "500k", "300k"])
def test_a_layered_video_goes_down_a_frame_rate_at_a_time_before_it_is_held(kbit, cut, held):
    plan = VideoPlan()
    assert plan.decide(limited(kbit * 1000), layered(800_000, 800_000, 800_000), 3, 0.0) == held
    assert plan.cut == cut


def test_a_video_without_layers_is_only_ever_held_and_keeps_no_smaller_one_waiting():
    # The judge's publisher sends no layers; the lawyer's does.
    both = [VideoCandidate(0, "judge", (800_000,)), *layered(0, 800_000)[1:]]
    plan = VideoPlan()
    # The judge's video does not fit: held, and the lawyer's takes the room it leaves.
    assert plan.decide(limited(700_000), both, 3, 0.0) == {0}
    assert plan.cut == {1: 1}
    plan = VideoPlan()
    link = limited(300_000)
    link.congested_at = 0.0
    assert plan.decide(link, both, 3, 0.0) == {0, 1}
    # The link grows: the lawyer's base layer fits, where the judge's whole video does not.
    link.bps = 700_000
    assert plan.decide(link, both, 3, HOLD_OFF_S[0] + 0.1) == {0}
    assert plan.cut == {1: 2}
    # Beside the judge's whole video, the lawyer's at a quarter of its frame rate.
    plan = VideoPlan()
    assert plan.decide(limited(1_300_000), both, 3, 0.0) == set()
    assert plan.cut == {1: 2}


def test_a_probe_goes_on_while_the_estimate_grows_under_it():
    plan = VideoPlan()
    link = limited(300_000)
    link.congested_at = 0.0
    judge = layered(800_000)
    plan.decide(link, judge, 3, 0.0)
    assert plan.held == {0}
    t = HOLD_OFF_S[0] + 0.1
    plan.decide(link, judge, 3, t)
    assert plan.probing
    for second in range(1, 2 * int(PROBE_MAX_S)):
        link.bps = 300_000 + 5_000 * second  # slowly, but growing
        plan.decide(link, judge, 3, t + second)
        assert plan.probing
    link.bps = 600_000  # room for the base layer, once it held as long as reports lag
    plan.decide(link, judge, 3, t + 2 * PROBE_MAX_S)
    assert plan.held == {0}
    plan.decide(link, judge, 3, t + 2 * PROBE_MAX_S + 2.1)
    assert plan.held == set() and plan.cut == {0: 2} and not plan.probing


def test_a_layered_video_comes_back_a_step_at_a_time_after_each_hold_off():
    plan = VideoPlan()
    link = limited(500_000)
    link.congested_at = 0.0
    judge = layered(800_000)
    assert plan.decide(link, judge, 3, 0.0) == set() and plan.cut == {0: 2}
    link.bps = 1_500_000  # the link has shown room
    plan.decide(link, judge, 3, HOLD_OFF_S[0] - 1)
    assert plan.cut == {0: 2}  # not before the hold-off
    plan.decide(link, judge, 3, HOLD_OFF_S[0] + 0.1)
    assert plan.cut == {0: 1}  # half the frame rate
    plan.decide(link, judge, 3, HOLD_OFF_S[0] + 1.0)
    assert plan.cut == {0: 1}  # one step per hold-off
    plan.decide(link, judge, 3, 2 * HOLD_OFF_S[0] + 0.2)
    assert plan.cut == {}  # every frame


def test_a_step_up_without_room_probes_and_congestion_after_it_waits_longer():
    plan = VideoPlan()
    link = limited(700_000)
    link.congested_at = 0.0
    judge = layered(800_000)
    plan.decide(link, judge, 3, 0.0)
    assert plan.cut == {0: 1}
    t = HOLD_OFF_S[0] + 0.1
    plan.decide(link, judge, 3, t)
    assert plan.probing and plan.cut == {0: 1}  # 320 kbit/s more does not fit yet
    link.bps = 1_200_000
    plan.decide(link, judge, 3, t + 1.0)
    # A probe grows the estimate past the link's rate before the reports show it: the room
    # counts once the estimate held for as long as reports lag.
    assert plan.cut == {0: 1}
    plan.decide(link, judge, 3, t + 3.2)
    assert plan.cut == {} and not plan.probing
    t += 2.2
    link.bps, link.congested_at = 700_000, t + 2.0  # that step brought congestion back
    plan.decide(link, judge, 3, t + 2.0)
    assert plan.cut == {0: 1}
    plan.decide(link, judge, 3, t + 2.0 + HOLD_OFF_S[0] + 0.1)
    assert not plan.probing  # the wait doubled
    plan.decide(link, judge, 3, t + 2.0 + HOLD_OFF_S[1] + 0.1)
    assert plan.probing


def test_when_the_active_speaker_changes_their_layers_come_from_a_less_important_video():
    plan = VideoPlan()
    link = limited(700_000)
    link.congested_at = 0.0
    lawyer, judge = layered(800_000, 800_000)
    assert plan.decide(link, [judge, lawyer], 3, 0.0) == {lawyer.slot}
    assert plan.cut == {judge.slot: 1}
    # The lawyer speaks: the judge's video makes way, and the lawyer's comes at once (a
    # step: the next waits for the hold-off, the link carrying no more than before).
    assert plan.decide(link, [lawyer, judge], 3, 0.25) == {judge.slot}
    assert plan.cut == {lawyer.slot: 2}


def test_loss_on_the_retransmission_stream_alone_never_makes_a_lossy_link():
    link = LinkEstimate()
    sending(link, 2_000_000, 0.0, 2.0)
    link.report(AUDIO, 0.0, 0.05, 1.0)
    link.report(VIDEO, 0.6, None, 2.0)
    assert link.bps is not None
    t = 2.0
    # Retransmissions the pacer had no room for leave gaps in that stream's numbers; the
    # media arrive whole.
    while t < 16.0:
        sending(link, 300_000, t, t + 1.0)
        t += 1.0
        link.report(AUDIO, 0.0, 0.05, t)
        link.report(PROBE, 0.3, None, t, probe=True)
    assert link.bps is not None  # still limited: the videos do not all come back


class WeakLink:
    """A hearing of three publishers sent to one subscriber behind a bottleneck as `tc tbf`
    makes it (the 1 Mbit/s weak-link test): `link_bps` on the wire, a tail-drop queue of
    `queue_s` of it counted in bytes (a nearly full queue still takes a small audio packet
    where a video packet no longer fits), and `random_loss` of every packet lost whatever is
    sent (a radio link). The sender sends what the estimate lets it: three voices at once,
    the videos paced to `VideoPlan.video_budget` (which counts no IP and UDP headers: as
    seen, 1.12 Mbit/s sent at an estimate of 1.1). Each
    stream's receiver report comes about once a second and describes its packets that had
    arrived, or not, a round trip before; audio reports carry the round trip once
    `rtt_from` (aiortc measures it from the sender reports it answers: the first came late)."""

    DT = 0.001
    AUDIO_BYTES = 120  # Opus at ~32 kbit/s, 50 packets a second
    VIDEO_BYTES = 1200
    VIDEO_BPS = 800_000  # what each publisher sends
    AUDIO_SSRCS = (11, 12, 13)
    VIDEO_SSRCS = (21, 22, 23)

    def __init__(self, link: LinkEstimate, link_bps: float, *, queue_s: float = 0.25,
                 base_rtt: float = 0.07, random_loss: float = 0.0, rtt_from: float = 2.46,
                 queue_full: bool = False, start: float = 0.0, seed: int = 16) -> None:
        self.link, self.link_bps, self.base_rtt = link, link_bps, base_rtt
        self.limit = link_bps / 8 * queue_s
        self.queue = self.limit if queue_full else 0.0
        self.random_loss, self.rtt_from = random_loss, rtt_from
        self._random = random.Random(seed)
        self.t = start
        ssrcs = self.AUDIO_SSRCS + self.VIDEO_SSRCS
        self._pending: dict[int, list[tuple[float, bool]]] = {s: [] for s in ssrcs}
        self._next_report = {s: start + 1.0 + 0.17 * i for i, s in enumerate(ssrcs)}
        self._credit = {s: 0.0 for s in self.VIDEO_SSRCS}
        self._ticks = 0
        self.packets = [0, 0]  # sent, lost (since `measure()`)
        self.estimates: list[tuple[float, float | None]] = []

    def measure(self) -> None:
        self.packets = [0, 0]
        self.estimates = []

    def _arrive(self, ssrc: int, payload: int) -> None:
        self.link.sent(payload, self.t)
        size = payload + 28
        lost = self._random.random() < self.random_loss or self.queue + size > self.limit
        if not lost:
            self.queue += size
        self._pending[ssrc].append((self.t, lost))
        self.packets[0] += 1
        self.packets[1] += lost

    def _report(self, rtt: float) -> None:
        """The receiver reports due now, each on the packets that had arrived (or not) a
        round trip before; and the estimate sampled."""
        for ssrc, at in self._next_report.items():
            if self.t < at:
                continue
            self._next_report[ssrc] = at + 1.0
            pending = self._pending[ssrc]
            described = [lost for sent_at, lost in pending if sent_at <= self.t - rtt]
            del pending[:len(described)]
            if described:
                audio = ssrc in self.AUDIO_SSRCS
                self.link.report(ssrc, sum(described) / len(described),
                                 rtt if audio and self.t >= self.rtt_from else None, self.t)
        if self._ticks % 250 == 0:
            self.estimates.append((self.t, self.link.bps))

    def run(self, until: float) -> None:
        while self.t < until:
            self.t += self.DT
            self._ticks += 1
            self.queue = max(0.0, self.queue - self.link_bps / 8 * self.DT)
            budget = VideoPlan().video_budget(self.link, len(self.AUDIO_SSRCS))
            video_bps = 3 * self.VIDEO_BPS if budget is None else min(3 * self.VIDEO_BPS,
                                                                       budget)
            # The videos that flow share it, each at least at its base layer (the others held).
            flowing = min(3, int(video_bps / (0.4 * self.VIDEO_BPS)))
            for i, ssrc in enumerate(self.AUDIO_SSRCS):
                if (self._ticks + 7 * i) % 20 == 0:
                    self._arrive(ssrc, self.AUDIO_BYTES)
            for i, ssrc in enumerate(self.VIDEO_SSRCS[:flowing]):
                self._credit[ssrc] += video_bps / flowing / 8 * self.DT
                if (self._ticks + 11 * i) % 33 == 0:  # a frame at a time, 30 a second
                    while self._credit[ssrc] >= self.VIDEO_BYTES:
                        self._credit[ssrc] -= self.VIDEO_BYTES
                        self._arrive(ssrc, self.VIDEO_BYTES)
            rtt = self.base_rtt + self.queue * 8 / self.link_bps
            self._report(rtt)


def test_a_full_queue_the_first_round_trip_never_saw_does_not_hide_a_link_too_narrow():
    # As a 1 Mbit/s weak-link test that failed: the start-up sent 4.9 Mbit/s, and the first
    # report, 75% lost, set the estimate to what got through, 1.1 Mbit/s: above the link
    # (reports lag what is sent, and the bottleneck's queue was still filling).
    link = LinkEstimate()
    sending(link, 4_900_000, -0.48, 0.52)
    link.report(WeakLink.VIDEO_SSRCS[0], 0.75, None, 0.52)
    assert link.bps is not None and link.bps > 1_050_000
    # From then on the sender sends what the estimate lets it into the full queue. The
    # first round trip measured (at 2.46 s) is a full queue's: the least seen, and it stays
    # as long as the queue does. The videos lose 6-24% a report, the voices nothing.
    hearing = WeakLink(link, 1_000_000, queue_full=True, start=0.52)
    hearing.run(6.0)
    # Within a few seconds the estimate came down to what the link carries.
    assert any(bps is not None and bps <= 1_000_000 for _, bps in hearing.estimates), (
        hearing.estimates)
    hearing.measure()
    hearing.run(40.0)
    # It keeps a limit (the loss was ours: sending less cured it), near the link's rate.
    assert all(bps is not None for _, bps in hearing.estimates), hearing.estimates
    estimates = sorted(bps for _, bps in hearing.estimates if bps is not None)
    assert estimates[len(estimates) // 2] <= 1_050_000, hearing.estimates
    # And what is sent gets through (issue 16's goal at 1 Mbit/s: 99% of the audio; here a
    # queue counted in bytes drops the larger video packets first, so all are counted).
    sent, lost = hearing.packets
    assert lost / sent <= 0.01, (lost, sent, hearing.estimates)


def test_a_lossy_wide_link_is_not_ground_down_and_its_limit_is_forgotten():
    # A radio link of 10 Mbit/s losing a fifth of every stream's packets whatever is sent, no
    # queue, and a burst (severe loss) that set a limit.
    link = LinkEstimate()
    hearing = WeakLink(link, 10_000_000, random_loss=0.2, rtt_from=0.5)
    hearing.run(2.0)
    assert link.bps is None  # heavy loss, the round trip steady: not a full link
    link.report(WeakLink.VIDEO_SSRCS[0], 0.6, None, hearing.t)
    after_burst = link.bps
    assert after_burst is not None
    hearing.measure()
    hearing.run(22.0)
    # Sending less (once: a fifth less, and a margin) did not make the loss fall: the estimate
    # went no lower, and the limit was forgotten.
    lowest = min(bps for _, bps in hearing.estimates if bps is not None)
    assert lowest >= 0.5 * after_burst, hearing.estimates
    assert link.bps is None, hearing.estimates
    hearing.run(40.0)
    assert all(bps is None for _, bps in hearing.estimates[-40:]), hearing.estimates


def test_a_late_report_of_the_loss_before_a_decrease_does_not_collapse_the_estimate():
    """A severe report that describes the time before the last decrease, read after its hold
    (a busy machine reads reports late): its loss applied to what is sent now took a 1 Mbit/s
    link's estimate to the floor in CI (753 -> 298 -> 123 kbit/s); it may halve it, no more."""
    link = LinkEstimate()
    sending(link, 2_000_000, 0.0, 2.0)
    link.report(VIDEO, 0.6, None, 2.0)  # a full link: down to what got through
    lowered = link.bps
    assert lowered is not None and lowered < 1_000_000
    sending(link, lowered, 2.0, 4.5)
    link.report(VIDEO, 0.8, None, 4.5)  # late: it describes the burst before the decrease
    assert link.bps is not None and link.bps >= 0.5 * lowered > MIN_BPS


STARVED_BROWSER_RTTS = (0.02, 0.03, 0.33, 0.52, 0.53, 0.2, 0.43, 0.31, 0.4, 0.39, 0.11, 0.23,
                        2.0, 2.4, 2.4, 2.8, 3.1, 2.5, 2.4, 1.4, 0.96, 0.69, 0.48, 0.34, 0.02, 0.42)


def test_a_round_trip_that_sending_less_does_not_shorten_is_no_queue_of_ours():
    """As the defendant's browser in the weak-link test, starved of CPU: its round trips read
    0.3-3 s with nothing lost (they are logged here, a report every 0.8 s). Each decrease went
    to 0.85 of what was sent, and what was sent fell with it: the estimate sat at 100-200
    kbit/s for good, every video held."""
    link = LinkEstimate()
    sending(link, 2_000_000, 0.0, 2.0)
    link.report(AUDIO, 0.0, 0.02, 1.0)
    link.report(VIDEO, 0.9, None, 2.0)  # a full link: a limit of 180 kbit/s
    limit = link.bps
    assert limit == pytest.approx(180_000, rel=0.05)
    t, estimates = 2.0, []
    for rtt in STARVED_BROWSER_RTTS:
        sending(link, 180_000, t, t + 0.8)
        t += 0.8
        link.report(AUDIO, 0.0, rtt, t)
        estimates.append(link.bps)
    # One decrease, judged: the round trips did not shorten, so it was undone and they are
    # not acted on for a while.
    assert min(e for e in estimates if e is not None) == pytest.approx(180_000 * 0.85, rel=0.1)
    assert estimates[-1] is not None and estimates[-1] >= limit, estimates
    assert link.delay_ignored_until > t
    # Loss still is: a full link is still a full link.
    sending(link, 900_000, t, t + 1.0)
    link.report(VIDEO, 0.6, None, t + 1.0)
    assert link.bps is not None and link.bps < 0.6 * 900_000


def test_a_longer_round_trip_while_sending_well_under_the_estimate_is_no_queue_of_ours():
    """The same browser while the court sent it the voices and a video cut to a quarter:
    125-290 kbit/s on an estimate of 300-900."""
    link = LinkEstimate()
    sending(link, 2_000_000, 0.0, 2.0)
    link.report(AUDIO, 0.0, 0.02, 1.0)
    link.report(VIDEO, 0.6, None, 2.0)
    limit = link.bps
    assert limit is not None and limit > 600_000
    t = 2.0
    for rtt in STARVED_BROWSER_RTTS:
        sending(link, 250_000, t, t + 0.8)
        t += 0.8
        link.report(AUDIO, 0.0, rtt, t)
        assert link.bps is not None and link.bps >= limit


def test_a_queue_that_sending_less_drains_goes_on_lowering_the_estimate():
    link = LinkEstimate()
    sending(link, 2_000_000, 0.0, 2.0)
    link.report(AUDIO, 0.0, 0.02, 1.0)
    link.report(VIDEO, 0.6, None, 2.0)
    t, rate = 2.0, 800_000.0
    # A queue builds (130 ms), drains after the decrease, and builds again at what is sent
    # then: the link narrowed again.
    for rtt in (0.15, 0.15, 0.05, 0.02, 0.02, 0.02, 0.15):
        sending(link, rate, t, t + 1.0)
        t += 1.0
        link.report(AUDIO, 0.0, rtt, t)
        rate = min(rate, link.bps or rate)
    # Down again, from what was sent after the first decrease.
    assert link.bps is not None and link.bps <= 0.95 * 800_000 * 0.85


class ProbedLink(WeakLink):
    """The weak link with the videos as `VideoPlan` decides them (none sends layers) and, while
    it probes, padding up to the estimate's reach; padding travels on a stream the subscriber
    does not report on (as aiortc's receivers). A round trip is the queue a sender report met
    `rtt_lag` before (aiortc's receivers answered them 1-4 s late)."""

    PADDING_BYTES = 275
    PADDING_SSRC = 31

    def __init__(self, link: LinkEstimate, link_bps: float, rtt_lag: float = 1.5,
                 **kwargs: object) -> None:
        super().__init__(link, link_bps, **kwargs)  # type: ignore[arg-type]
        self.rtt_lag = rtt_lag
        self._queues: list[float] = []  # the queue's length in seconds, a tick at a time
        self.plan = VideoPlan()
        self.audio_packets = [0, 0]  # sent, lost
        self.probed_bps: list[float] = []  # what each probe tick filled up to
        self._padding_credit = 0.0
        self._pending[self.PADDING_SSRC] = []
        self._next_report[self.PADDING_SSRC] = float("inf")

    def _arrive(self, ssrc: int, payload: int) -> None:
        before = self.packets[1]
        super()._arrive(ssrc, payload)
        if ssrc in self.AUDIO_SSRCS:
            self.audio_packets[0] += 1
            self.audio_packets[1] += self.packets[1] - before

    def run(self, until: float) -> None:
        candidates = videos(*[self.VIDEO_BPS] * 3)
        while self.t < until:
            self.t += self.DT
            self._ticks += 1
            self.queue = max(0.0, self.queue - self.link_bps / 8 * self.DT)
            if self._ticks % 100 == 1:
                self.plan.decide(self.link, candidates, len(self.AUDIO_SSRCS), self.t)
            for i, ssrc in enumerate(self.AUDIO_SSRCS):
                if (self._ticks + 7 * i) % 20 == 0:
                    self._arrive(ssrc, self.AUDIO_BYTES)
            for i, ssrc in enumerate(self.VIDEO_SSRCS):
                if i in self.plan.held:
                    continue
                self._credit[ssrc] += self.VIDEO_BPS / 8 * self.DT
                if (self._ticks + 11 * i) % 33 == 0:
                    while self._credit[ssrc] >= self.VIDEO_BYTES:
                        self._credit[ssrc] -= self.VIDEO_BYTES
                        self._arrive(ssrc, self.VIDEO_BYTES)
            reach = self.link.reach
            if self.plan.probing and reach is not None:
                self.probed_bps.append(reach)
                missing = reach - self.link.media_bps(self.t)
                self._padding_credit += max(0.0, missing) * self.DT / 8 / self.PADDING_BYTES
                while self._padding_credit >= 1:
                    self._padding_credit -= 1
                    self.link.sent(self.PADDING_BYTES - 28, self.t, padding=True)
                    if self.queue + self.PADDING_BYTES <= self.limit:
                        self.queue += self.PADDING_BYTES
            self._queues.append(self.queue * 8 / self.link_bps)
            lag = int(self.rtt_lag / self.DT)
            rtt = self.base_rtt + self._queues[-lag if len(self._queues) >= lag else 0]
            self._report(rtt)


def test_a_probe_from_the_voices_alone_fills_the_link_a_step_at_a_time():
    """As the 300 kbit/s weak-link test that failed in CI: the start-up burst's loss set the
    estimate to 791 kbit/s, the voices alone then sent 180, and the probe padded up to 791 at
    once: the voices lost 31% of a report, the decrease after it went to 509 kbit/s, and the
    court was shown 509-583 kbit/s on a 300 kbit/s link for good."""
    link = LinkEstimate()
    sending(link, 2_300_000, -3.0, -2.0)
    link.report(WeakLink.VIDEO_SSRCS[0], 0.625, None, -2.0)
    assert link.bps is not None and link.bps > 2.5 * 300_000
    sending(link, 180_000, -2.0, 0.0)  # the voices alone: every video held
    hearing = ProbedLink(link, 300_000, rtt_from=0.5)
    hearing.run(60.0)
    assert hearing.probed_bps, "the plan never probed"
    # The probe filled the link no further than 1.5 times what it had carried.
    assert max(hearing.probed_bps) <= 1.5 * 1.3 * 300_000, max(hearing.probed_bps)
    estimates = sorted(bps for t, bps in hearing.estimates if t >= 20.0 and bps is not None)
    assert estimates[len(estimates) // 2] <= 1.6 * 300_000, hearing.estimates
    # The voices lost little to it (0.9% of their packets, 42% of one report, when the probe
    # padded up to the estimate).
    sent, lost = hearing.audio_packets
    assert lost / sent <= 0.005, (lost, sent)
