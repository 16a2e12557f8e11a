"""A subscriber's downlink: how much it carries, and which videos it gets when that is not all.

Audio comes first, always: a party who cannot hear the court has not had a hearing. The server
forwards encoded frames and cannot make a publisher's picture smaller for one subscriber, but
browsers publish VP8 in three temporal layers (`media.forwarding`), so it can send fewer
frames. When a subscriber's link cannot carry everything, the least important video goes down
a step at a time (half its frame rate, a quarter, then held back entirely) before the next one
is touched (the active speaker and the judge are kept longest); the steps cost what that
publisher's layers are measured to cost, and a video with no layers (a publisher that sends
none) has one step only: held. Audio is never queued behind video (`media.pacing`).

The estimate follows Google's congestion control in outline. Receiver reports say what
fraction of our packets the subscriber lost and (for audio, which always flows) the round trip.
Heavy loss means the link carries about what got through: the estimate drops to that, less a
margin, and once a link has shown a limit it goes on dropping while heavy loss stays, until
sending less no longer makes the loss fall (then the loss is the link's own). Once a link has
shown a limit, a round trip growing over the least seen is a queue building at its bottleneck,
and the estimate drops below what we send before anything is lost. A round trip that grows while
we send well under the estimate (and not beyond what the link has been seen to carry), or that
sending less did not shorten, is no queue of ours (a busy receiver reading our reports late;
traffic we do not control): the first is not acted on, the second's decrease is undone and
round trips alone are not acted on for a while; loss still is, with or without them.
A clean link lets the estimate grow by 8% a second, up to 1.5 times what we send (as GCC). To
learn whether more video would now fit, the link is probed: padding fills it up to the estimate
(so the estimate can grow on evidence), but to no more than 1.5 times what the link has been
seen to carry since it was last full (an estimate set by loss during a burst can sit at twice
the link, and padding up to it at once floods the link the voices share): the probe climbs as
the link carries it. The most important video whose next step the estimate has room for goes
up that step, once the estimate has held as long as reports lag (a
probe grows it past the link's rate before the reports show the queue). A probe or a step up
that brings congestion back doubles the wait before the next try. The padding is what a full
bottleneck drops most of: its loss says the link is full, the media's how much got through.

Pure logic on a clock the caller passes in: no aiortc, no asyncio.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

# What each packet costs on the wire beyond what is counted (IPv4 + UDP headers).
PACKET_OVERHEAD_BYTES = 28
SENT_WINDOW_S = 1.0
# What a receiver report describes: the second or so before it, sent before any decrease it
# prompts took effect; reports that follow a decrease still describe the time before it.
DECREASE_HOLD_S = 2.0
# Loss above HEAVY_LOSS with a queue building is a full link; loss above SEVERE_LOSS is one
# whatever the round trip says. Heavy loss on a steady round trip, before the link has shown a
# limit, may be a lossy link (a radio link, a bad cable): it is left alone.
HEAVY_LOSS = 0.10
SEVERE_LOSS = 0.50
# On a link that has shown a limit, heavy loss without a queue is not yet a lossy link: the
# first estimate can sit above the link (it came from reports describing a start-up burst and
# a queue still filling), and a round trip first measured with the queue already full is the
# least seen, so a full queue hides. The estimate goes on down to what got through each time
# the reports describe the time since the last decrease; only loss that has not fallen to
# LOSS_FELL of what it was once the estimate went below what got through is the link's own
# (sending less did not help).
LOSS_FELL = 0.5
# The link's own heavy loss that stays this long after the last decrease, with no queue, makes
# the limit forgotten, and loss alone is not acted on for a while (a bad radio link would
# otherwise lose every video for good).
LOSSY_AFTER_S = 10.0
LOSSY_HOLD_S = 60.0
LIGHT_LOSS = 0.02  # below this it has room
# The reports of each stream arrive one by one: the link's loss is the worst of those of
# the last moment.
REPORTS_SPAN_S = 1.5
DELIVERED_MARGIN = 0.9  # the estimate after heavy loss: this much of what got through
# A round trip this much over the least seen: a queue is building at the bottleneck.
QUEUEING_S = 0.08
QUEUE_CLEAR_S = 0.03
QUEUED_MARGIN = 0.85  # the estimate when a queue builds: this much of what we send
# A queue-driven decrease is judged by the round trips of this long after its hold: not one
# fell to QUEUE_FELL of the queue that prompted it, and the delay is not ours (a starved
# browser's round trips read 0.3-3 s behind a 1 Mbit/s link with nothing queued and nothing
# lost, and each decrease to what the voices alone sent held every video for good). Round
# trips are then not acted on for DELAY_IGNORED_S.
QUEUE_JUDGED_S = 1.5
QUEUE_FELL = 0.5
DELAY_IGNORED_S = 60.0
# Nor is a longer round trip while we send well under the estimate and no more than the link
# has been seen to carry: the voices alone and a video cut to a quarter sent 125-290 kbit/s to
# that browser, and each 0.1-0.3 s spike took the estimate to 0.85 of that. A link that
# narrowed below what we send shows it in loss.
QUEUE_OURS_FROM = 0.7
# But sending this much over what the link has been seen to carry can build a queue whatever
# the estimate says (one set by loss during a burst can sit at twice the link).
BEYOND_CARRIED = 1.25
RTT_SMOOTHING = 0.8
MIN_RTT_WINDOW_S = 30.0
QUEUEING_FRESH_S = 2.0
GROWTH_PER_S = 0.08
GROWTH_CAP = 1.5  # times what was sent (GCC's: 1.5 times what was acknowledged)
MIN_BPS = 64_000
# A full link's decrease takes at most this share off the estimate: a report that describes the time
# before the last decrease, read late on a busy machine, applied its loss to what we send now
# (a 1 Mbit/s link's estimate fell 753 -> 298 -> 123 kbit/s and every video stayed held). A
# link that much slower is still reached in a few holds.
MAX_DECREASE = 0.5
MAX_BPS = 50_000_000
# A video comes back, or goes up a step, only with this headroom over the rate it comes to:
# keyframes come in bursts, and rates wander.
VIDEO_HEADROOM = 1.15
# The audio of one slot on the wire (Opus at browsers' ~32-40 kbit/s, 50 packets/s, headers).
AUDIO_SLOT_BPS = 60_000
HOLD_OFF_S = (5.0, 10.0, 20.0, 40.0)
STABLE_S = 30.0  # a returned video (or a probe) that lasted this long resets the hold-off
# A probe under which the estimate has not grown for this long ends as a failed try: on a
# link far too narrow for more, probing would only keep the bottleneck's queue full.
PROBE_MAX_S = 6.0


@dataclass(frozen=True)
class VideoCandidate:
    """A video the subscriber may receive: its slot, and what its publisher sends, measured:
    `rates[k]` bits a second with temporal layers 0 to k (one rate when it sends no layers)."""

    slot: int
    participant_id: str
    rates: tuple[float, ...]

    def rate(self, step: int) -> float:
        """Bits a second at `step`: 0 is every layer, each step one layer fewer, and the
        last step (`len(rates)`) held back."""
        return self.rates[len(self.rates) - 1 - step] if step < len(self.rates) else 0.0

    def room_to_rise(self, step: int) -> float:
        """What going up from `step` needs: what it adds, and headroom on the rate it comes
        to (that rate wanders, and a video coming back starts with a keyframe)."""
        return self.rate(step - 1) - self.rate(step) + (VIDEO_HEADROOM - 1) * self.rate(step - 1)


class LinkEstimate:
    """How many bits a second the subscriber's downlink carries; None until it shows a limit
    (a link that never lost anything gets everything)."""

    def __init__(self) -> None:
        self.bps: float | None = None
        self.loss = 0.0  # the latest fraction reported lost
        self.rtt: float | None = None  # smoothed, for the court
        self.min_rtt: float | None = None
        self.queueing = 0.0  # the latest round trip over the least seen, seconds
        self._queueing_at = float("-inf")
        # (when, round trip, whether it can tell a queue: see `report`)
        self._rtts: collections.deque[tuple[float, float, bool]] = collections.deque()
        self.congested_at = float("-inf")
        self._sent: collections.deque[tuple[float, int, bool]] = collections.deque()
        self._sent_bytes = 0
        self._padding_bytes = 0
        self._sent_peak = (float("-inf"), 0.0)  # (when, bits a second)
        self._last_decrease = float("-inf")
        self._last_growth: float | None = None
        # stream -> (when, fraction lost, whether it carries the probe)
        self._losses: dict[int, tuple[float, float, bool]] = {}
        self._heavy_since: float | None = None
        # The media's loss when heavy loss without a queue last lowered the estimate below
        # what got through of what we sent; None once the link carried more (it grew).
        self._lowered_at_loss: float | None = None
        self.lossy_until = float("-inf")  # until then loss alone says nothing of the link
        self.delay_ignored_until = float("-inf")  # until then round trips say nothing
        # The last queue-driven decrease: (when, the queue that prompted it, the estimate
        # before the first of those in a row); None once the link has carried more since.
        self._queue_lowered: tuple[float, float, float] | None = None
        # What the link has been seen to carry since it was last full: what we sent
        # throughout the time a clean report describes; no more than the estimate.
        self.carried = 0.0
        self._sent_history: collections.deque[tuple[float, float]] = collections.deque()

    def sent(self, nbytes: int, now: float, padding: bool = False) -> None:
        """A packet of `nbytes` went to the subscriber (`padding`: a probe)."""
        size = nbytes + PACKET_OVERHEAD_BYTES
        self._sent.append((now, size, padding))
        self._sent_bytes += size
        if padding:
            self._padding_bytes += size
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._sent and now - self._sent[0][0] > SENT_WINDOW_S:
            _, size, padding = self._sent.popleft()
            self._sent_bytes -= size
            if padding:
                self._padding_bytes -= size

    def sent_bps(self, now: float) -> float:
        self._trim(now)
        return self._sent_bytes * 8 / SENT_WINDOW_S

    def media_bps(self, now: float) -> float:
        """What we sent that was not padding."""
        self._trim(now)
        return (self._sent_bytes - self._padding_bytes) * 8 / SENT_WINDOW_S

    def _reported_bps(self, now: float) -> float:
        """What we sent in the time a report describes: the most over the last 2 s."""
        sent = self.sent_bps(now)
        at, peak = self._sent_peak
        if sent >= peak or now - at > DECREASE_HOLD_S:
            self._sent_peak = (now, sent)
            return sent
        return peak

    @property
    def reach(self) -> float | None:
        """What a probe may fill the link up to: the estimate, but no more than GROWTH_CAP
        times what the link has carried (None: no limit known)."""
        if self.bps is None:
            return None
        return min(self.bps, GROWTH_CAP * max(self.carried, MIN_BPS))

    def _sent_throughout(self) -> float:
        """The least we sent, a second at a time, over the time a report describes (as
        sampled at each report)."""
        return min(bps for _, bps in self._sent_history)

    def report(self, stream: int, fraction_lost: float, rtt: float | None, now: float,
               probe: bool = False) -> None:
        """A receiver report on one of our streams: `fraction_lost` (0-1) of its packets since
        its last one, and the round trip it measured (None: not measured). `probe`: the
        stream that carries the probe's padding (and retransmissions), which is what a
        bottleneck filled by a probe drops most of: its loss says the link is full, not how
        much of the media got through."""
        self._losses[stream] = (now, fraction_lost, probe)
        self._sent_history.append((now, self.sent_bps(now)))
        while now - self._sent_history[0][0] > DECREASE_HOLD_S:
            self._sent_history.popleft()
        for key in [k for k, (at, _, _) in self._losses.items() if now - at > REPORTS_SPAN_S]:
            del self._losses[key]
        fraction_lost = self.loss = max(f for _, f, _ in self._losses.values())
        # Only the media's loss says the link itself loses: the retransmission stream also
        # "loses" the retransmissions the pacer had no room for (their sequence numbers taken).
        media = [(at, f) for at, f, p in self._losses.values() if not p]
        media_lost = max((f for _, f in media), default=0.0)
        heavy = media_lost > HEAVY_LOSS
        held_off = now - self._last_decrease < DECREASE_HOLD_S
        # The media's loss in the reports that describe the time since the last decrease: those
        # that came after the hold (one before may describe the time before it), once they
        # span as long as every stream's do (the worst of a few is noise on a slow stream).
        settled = now - self._last_decrease >= DECREASE_HOLD_S + REPORTS_SPAN_S
        lost_since = max((f for at, f in media if at - self._last_decrease >= DECREASE_HOLD_S),
                         default=0.0) if settled else 0.0
        # Heavy loss that stayed after the estimate went below what got through, and did not
        # fall: the link's own.
        own = (lost_since > HEAVY_LOSS and self._lowered_at_loss is not None
               and lost_since >= LOSS_FELL * self._lowered_at_loss)
        if rtt is not None:
            self.rtt = rtt if self.rtt is None else RTT_SMOOTHING * self.rtt + (
                1 - RTT_SMOOTHING) * rtt
            # The least round trip of the last half minute: a route that changed for good
            # (a longer path, a relay) is the new normal, not a queue that never drains.
            # One measured during heavy loss may be a full queue's (before sending less
            # showed the loss is the link's own): if all are, no queue can be told apart.
            self._rtts.append((now, rtt, not heavy or own))
            while now - self._rtts[0][0] > MIN_RTT_WINDOW_S:
                self._rtts.popleft()
            self.min_rtt = min(r for _, r, _ in self._rtts)
            self.queueing, self._queueing_at = rtt - self.min_rtt, now
        elif now - self._queueing_at > QUEUEING_FRESH_S:
            self.queueing = 0.0  # no recent measure: no queue is known
        queueing = self.queueing
        # A round trip that is not ours is not acted on alone; with heavy loss it still says
        # the link is full.
        delay_trusted = now >= self.delay_ignored_until
        no_queue = queueing < QUEUE_CLEAR_S and any(told for _, _, told in self._rtts)
        sent = self._reported_bps(now)
        clean = fraction_lost < LIGHT_LOSS and (queueing < QUEUE_CLEAR_S or not delay_trusted)
        if clean and not held_off:
            self.carried = max(self.carried, self._sent_throughout())
            if self.bps is not None:
                self.carried = min(self.carried, self.bps)
        if not heavy:
            self._heavy_since = None
        elif self._heavy_since is None:
            self._heavy_since = now
        if (self.bps is not None and own and self._heavy_since is not None
                and now - max(self._heavy_since, self._last_decrease) >= LOSSY_AFTER_S
                and no_queue):
            # We sent less and the loss stayed: it is not ours. Everything goes back.
            self.bps, self.lossy_until, self._heavy_since = None, now + LOSSY_HOLD_S, None
            self._lowered_at_loss = None
            return
        queued = fraction_lost > HEAVY_LOSS and queueing > QUEUEING_S
        # Once sending less has shown the loss to be the link's own, a burst of it is not a
        # full link (the round trips, trusted then, would show a queue).
        full = queued or (fraction_lost > SEVERE_LOSS and now >= self.lossy_until and not own)
        if full:
            if not held_off and sent > 0:
                # No `_lowered_at_loss`: its loss may describe less than the most sent lately
                # (a start-up burst), so it does not test whether sending less cures the loss.
                floor = 0.0 if self.bps is None else self.bps * (1 - MAX_DECREASE)
                self._lower(max(sent * (1 - media_lost) * DELIVERED_MARGIN, floor), now)
            self._last_growth = now
        elif heavy and self.bps is not None and now >= self.lossy_until:
            # No queue seen, but the link has shown a limit: down to what got through, until
            # the loss shows it is the link's own.
            if lost_since > HEAVY_LOSS and not own and sent > 0:
                self._lower(sent * (1 - lost_since) * DELIVERED_MARGIN, now)
                self._lowered_at_loss = lost_since
            self._last_growth = now
        elif fraction_lost > HEAVY_LOSS:
            # A lossy link, or only the probe lost: no growth, and no decrease either.
            self._last_growth = now
        elif self.bps is not None and queueing > QUEUEING_S and delay_trusted:
            # Only once the link has shown a limit: on a busy machine a slow event loop at
            # either end lengthens the round trip as much as a queue does.
            lowered = self._queue_lowered
            if lowered is not None and now - lowered[0] < DECREASE_HOLD_S + QUEUE_JUDGED_S:
                pass  # the last decrease is still being judged
            elif lowered is not None and self._queue_stayed(lowered):
                self.bps = max(self.bps, lowered[2])
                self.delay_ignored_until, self._queue_lowered = now + DELAY_IGNORED_S, None
            elif not held_off and (sent >= QUEUE_OURS_FROM * self.bps
                                   or 0 < BEYOND_CARRIED * self.carried <= sent):
                before = self.bps if lowered is None else lowered[2]
                self._lower(sent * QUEUED_MARGIN, now)
                self._queue_lowered = (now, queueing, before)
            self._last_growth = now
        elif clean and self.bps is not None:
            since = 0.0 if self._last_growth is None else now - self._last_growth
            self._last_growth = now
            grown = self.bps * (1 + GROWTH_PER_S) ** min(since, 2.0)
            # The link has carried what we sent, no more: beyond a little over that is a
            # guess (twice was seen to reach 1.26 Mbit/s on a 1 Mbit/s link and let in a
            # video that flooded it): more must be probed.
            self.bps = min(grown, max(self.bps, GROWTH_CAP * self.sent_bps(now)), MAX_BPS)
            self._lowered_at_loss = None  # it carried what we sent: later loss is news
            if self._queue_lowered is not None and self.bps >= self._queue_lowered[2]:
                self._queue_lowered = None
        else:
            self._last_growth = now

    def _lower(self, bps: float, now: float) -> None:
        self.bps = max(MIN_BPS, min(self.bps if self.bps is not None else bps, bps))
        # What the link carries is to be seen again: a decrease on loss guesses it from what
        # we sent (a start-up burst's was 2.6 times the link), one on a queue says only that
        # it carries less than we sent.
        self.carried = 0.0
        self._last_decrease = self.congested_at = now
        self._queue_lowered = None  # a loss-driven one: the link's limit, whatever the queue

    def _queue_stayed(self, lowered: tuple[float, float, float]) -> bool:
        """No round trip measured in the span after the decrease's hold fell to QUEUE_FELL of
        the queue that prompted it (sending less did not shorten them)."""
        since = lowered[0] + DECREASE_HOLD_S
        queues = [rtt - (self.min_rtt or 0.0) for at, rtt, _ in self._rtts if at >= since]
        return bool(queues) and min(queues) >= QUEUE_FELL * lowered[1]


class VideoPlan:
    """Which of a subscriber's videos are forwarded, and with how many temporal layers, given
    its link.

    Each video goes down in steps: every layer, one layer fewer (half the frame rate), ...,
    the base layer alone, then held back. `decide` is called a few times a second with the
    videos in order of importance; it takes the least important video down a step at a time
    until what is sent fits and, after a hold-off, takes the most important video whose next
    step fits up a step, or probes the link when none does.
    """

    def __init__(self) -> None:
        self.held: set[int] = set()  # slots held back
        self.cut: dict[int, int] = {}  # slot -> temporal layers left out (none when absent)
        self.probing = False  # pad the link up to the estimate, to learn if it carries more
        self._hold_off = 0  # index into HOLD_OFF_S
        self._resume_after = float("-inf")
        self._tried_at: float | None = None  # a step up taken, or a probe begun (or grew)
        self._probed_to = 0.0  # the estimate when the probe last made it grow
        self._budgets: collections.deque[tuple[float, float]] = collections.deque()
        self._congestion_seen = float("-inf")

    def _steps(self, videos: Sequence[VideoCandidate]) -> dict[int, int]:
        """Each video's step now (see `VideoCandidate.rate`)."""
        return {v.slot: len(v.rates) if v.slot in self.held
                else min(self.cut.get(v.slot, 0), len(v.rates) - 1) for v in videos}

    def _keep(self, videos: Sequence[VideoCandidate], steps: dict[int, int]) -> None:
        self.held = {v.slot for v in videos if steps[v.slot] == len(v.rates)}
        self.cut = {v.slot: steps[v.slot] for v in videos
                    if 0 < steps[v.slot] < len(v.rates)}

    def decide(self, estimate: LinkEstimate, videos: Sequence[VideoCandidate], audio_slots: int,
               now: float) -> set[int]:
        """The slots to hold back from now on (and in `cut`, the layers left out of others)."""
        steps = self._steps(videos)
        if estimate.bps is None:
            self.held.clear()
            self.cut.clear()
            self.probing = False
            return self.held
        if estimate.congested_at > self._congestion_seen:
            self._congestion_seen = estimate.congested_at
            if self._tried_at is not None and now - self._tried_at < STABLE_S:
                # The last try brought the congestion back: wait longer before the next.
                self._hold_off = min(self._hold_off + 1, len(HOLD_OFF_S) - 1)
            self._resume_after = now + HOLD_OFF_S[self._hold_off]
            self._tried_at = None
            self.probing = False
        elif self._tried_at is not None and now - self._tried_at >= STABLE_S:
            self._hold_off = 0
        budget = estimate.bps - audio_slots * AUDIO_SLOT_BPS
        # The room the link has shown: what the estimate has held for as long as reports lag
        # (a probe grows it past the link's rate before the reports say the queue builds).
        self._budgets.append((now, budget))
        while now - self._budgets[0][0] > DECREASE_HOLD_S:
            self._budgets.popleft()
        shown = min(b for _, b in self._budgets)
        # A video keeps its step at its own rate while everything fits (its rate wanders,
        # and going down and up on every wobble would be worse than either).
        used = sum(v.rate(steps[v.slot]) for v in videos)
        flowing = dict(steps)
        for video in reversed(videos):  # the least important first
            while used > budget and steps[video.slot] < len(video.rates):
                used -= video.rate(steps[video.slot]) - video.rate(steps[video.slot] + 1)
                steps[video.slot] += 1
        # Holding a large video may have freed more than was needed: what was taken down on
        # the way goes back up as far as that leaves room (it flowed: nothing to probe).
        for video in videos:
            while steps[video.slot] > flowing[video.slot]:
                more = video.rate(steps[video.slot] - 1) - video.rate(steps[video.slot])
                if used + more > budget:
                    break
                used += more
                steps[video.slot] -= 1
        used = self._swap_by_importance(videos, steps, used, shown)
        self._keep(videos, steps)
        waiting = [v for v in videos if steps[v.slot] > 0]
        if not waiting or now < self._resume_after:
            self.probing = False
            return self.held
        # The most important video whose next step the link has shown room for (a video
        # without layers, whose one step is large, does not keep a smaller one waiting).
        fits = next((v for v in waiting if used + v.room_to_rise(steps[v.slot]) <= shown), None)
        if fits is not None:
            steps[fits.slot] -= 1
            self._keep(videos, steps)
            self._tried_at = now
            self._resume_after = now + HOLD_OFF_S[0]
            self.probing = False
        elif not self.probing:
            self.probing = True
            self._tried_at, self._probed_to = now, estimate.reach or 0.0
        elif (estimate.reach or 0.0) > self._probed_to:
            # What the probe may fill is growing (the estimate, or what the link carries under
            # it): the probe is no failure yet.
            self._tried_at, self._probed_to = now, estimate.reach or 0.0
        elif self._tried_at is not None and now - self._tried_at >= PROBE_MAX_S:
            self.probing = False
            self._hold_off = min(self._hold_off + 1, len(HOLD_OFF_S) - 1)
            self._resume_after = now + HOLD_OFF_S[self._hold_off]
            self._tried_at = None
        return self.held

    def _swap_by_importance(self, videos: Sequence[VideoCandidate], steps: dict[int, int],
                            used: float, budget: float) -> float:
        """A video sent at less than full rate while less important ones get more (the
        active speaker changed, a held slot now carries the judge): it goes up a step when
        taking them down, the least important first, frees enough. One swap a call; returns
        what the videos then use."""
        for i, wanted in enumerate(videos):
            step = steps[wanted.slot]
            if step == 0:
                continue
            need = wanted.room_to_rise(step)
            lowered = dict(steps)
            freed = 0.0
            for video in reversed(videos[i + 1:]):
                while (used - freed + need > budget
                       and lowered[video.slot] < len(video.rates)):
                    s = lowered[video.slot]
                    freed += video.rate(s) - video.rate(s + 1)
                    lowered[video.slot] = s + 1
            if freed and used - freed + need <= budget:
                lowered[wanted.slot] = step - 1
                steps.update(lowered)
                return used - freed + wanted.rate(step - 1) - wanted.rate(step)
        return used

    def video_budget(self, estimate: LinkEstimate, audio_slots: int) -> float | None:
        """Bits a second the subscriber's video may be paced at (None: no limit known)."""
        if estimate.bps is None:
            return None
        return max(MIN_BPS, estimate.bps - audio_slots * AUDIO_SLOT_BPS)
