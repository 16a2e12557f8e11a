"""Who in this process listens to each hearing's events, and delivering to them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class HearingListeners:
    def __init__(self) -> None:
        self._by_hearing: dict[str, list[Listener]] = {}

    def add(self, hearing_id: str, listener: Listener) -> Callable[[], None]:
        """Register a listener; returns the function that removes it."""
        self._by_hearing.setdefault(hearing_id, []).append(listener)

        def remove() -> None:
            listeners = self._by_hearing.get(hearing_id, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._by_hearing.pop(hearing_id, None)

        return remove

    def __contains__(self, hearing_id: str) -> bool:
        return hearing_id in self._by_hearing

    def deliver(self, hearing_id: str, event: dict[str, Any]) -> None:
        """Call every listener of the hearing; one failing does not stop the others."""
        for listener in tuple(self._by_hearing.get(hearing_id, ())):
            try:
                listener(event)
            except Exception:
                log.exception("listener of hearing %s failed", hearing_id)
