"""Who hears and sees whom, and what is on the record: a pure function of the seats.

This is the only place the rules live. The live hearing applies the result to its media room
on every change of a seat, on every arrival, and after it is taken up (a restart, a failover,
everyone reconnecting), so media can never follow anything but the seats as they are.

The rules, for each pair (publisher, subscriber) and each kind (audio, video):
- Only participants present and admitted take part; the lobby receives nothing and nothing of
  theirs goes anywhere. Observers receive the hearing and publish nothing.
- A private consultation is a group of its own: its members hear and see only each other, and
  nobody else hears or sees them.
- Audio muted (by the court or by the participant) is forwarded to nobody.
- The record (recording, trial record, the active speaker) holds exactly what the court heard:
  a publisher's kind is on the record when it is forwarded in the hearing itself, whether or
  not anyone else is there to receive it.
- On a link too weak for every video, the judges' video is kept longest after the active
  speaker's (`prominent`).
"""

from __future__ import annotations

from collections.abc import Iterable

from courtrooms.models import Role
from media.room import Routing
from signaling.seats import Seat

KINDS = ("audio", "video")


def _takes_part(seat: Seat) -> bool:
    return seat.present and seat.admitted


def _publishes(seat: Seat) -> bool:
    return _takes_part(seat) and seat.role != Role.OBSERVER.value


def _sends(seat: Seat, kind: str) -> bool:
    """Whether the publisher's `kind` goes anywhere at all."""
    return _publishes(seat) and not (kind == "audio" and seat.muted)


def route(seats: Iterable[Seat]) -> Routing:
    """The routing of a hearing whose seats are `seats` (in arrival order)."""
    seats = list(seats)
    sources: dict[str, tuple[tuple[str, str], ...]] = {}
    for subscriber in seats:
        if not _takes_part(subscriber):
            continue
        sources[subscriber.participant_id] = tuple(
            (publisher.participant_id, kind)
            for publisher in seats
            if publisher is not subscriber and publisher.consulting == subscriber.consulting
            for kind in KINDS
            if _sends(publisher, kind)
        )
    on_record = frozenset(
        (seat.participant_id, kind)
        for seat in seats
        if seat.consulting is None
        for kind in KINDS
        if _sends(seat, kind)
    )
    prominent = tuple(s.participant_id for s in seats
                      if s.role == Role.JUDGE.value and _sends(s, "video"))
    return Routing(sources=sources, on_record=on_record, prominent=prominent)
