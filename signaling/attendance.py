"""The live hearing's attendance log: every join and departure, with its cause and the moment
it happened, written to the audit (`courtrooms.attendance` reads them back into the report).

Written in order, behind whatever joins and departures hold (a slow database must not hold up
a rejoin); a failed write is logged, never in the participant's way; a retiring hearing waits
for the writes (they run in its kept tasks).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signaling.hearing import LiveHearing

log = logging.getLogger(__name__)


class AttendanceLog:
    def __init__(self, hearing: LiveHearing) -> None:
        self.hearing = hearing
        self._tail: asyncio.Task[None] | None = None

    def write(self, action: str, participant_id: str, **data: Any) -> None:
        """Queue `action` (attendance.joined or attendance.left) for the participant."""
        hearing, previous, wall = self.hearing, self._tail, time.time()

        async def write() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await hearing.registry.record(
                    hearing.hearing_uuid, f"participant:{participant_id}", action,
                    participant_id=participant_id, wall=wall, **data)
            except Exception:
                log.exception("hearing %s: %s for %s could not be audited", hearing.id,
                              action, participant_id)

        self._tail = hearing.kept.spawn(write(), name=f"attendance-{hearing.id[:8]}",
                                        context=hearing.context)
