"""The court's vocabulary under /api/v1: the words and sets every page shows and decides by.

Defined once in courtrooms (labels.py, and the sets beside their enums in models.py); the
pages' /static/labels.js loads it before any page script runs, so no script keeps a copy.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, Field

from config.timezone import zone_label
from courtrooms.labels import vocabulary
from web.endpoints import API_PREFIX, EndpointTable, respond
from web.keys import SETTINGS

routes = EndpointTable(API_PREFIX)


class RoleSets(BaseModel):
    controls_hearing: list[str] = Field(
        description="Admit, mute, remove; open, recess and close the hearing")
    may_review: list[str] = Field(
        description="Review recordings and the record by role (others when permitted)")
    consulting: list[str] = Field(description="May ask for a private consultation")
    counsel: list[str] = Field(description="Whom a consultation is with")
    in_courtroom: list[str] = Field(description="Seated in the courtroom unless told otherwise")
    id_digits: list[str] = Field(
        description="Asked for the last digits of their ID number at each join, when the court "
        "has them on file")
    interpreted: list[str] = Field(description="Whom an interpreter may interpret for")


class StateSets(BaseModel):
    active: list[str] = Field(description="Still holds its courtroom, judge and terminals")
    live: list[str] = Field(description="People may be in it now")
    editable: list[str] = Field(description="May still be moved")
    finished: list[str] = Field(description="Over for good")


class Vocabulary(BaseModel):
    roles: dict[str, str] = Field(description="Role → its Chinese name, in the court's order")
    states: dict[str, str] = Field(description="Hearing state → its Chinese name")
    kinds: dict[str, str] = Field(description="Hearing kind → its Chinese name")
    locations: dict[str, str] = Field(description="Where a participant joins from → its name")
    role_sets: RoleSets
    state_sets: StateSets
    commands: dict[str, list[str]] = Field(
        description="Hearing command → the states it may be given in")
    time_zone: str = Field(default="Asia/Shanghai",
                           description="The court's time zone: pages show times in it")
    time_zone_label: str = Field(default="北京时间",
                                 description="How the pages name that zone (北京时间, UTC+09:00)")


VOCABULARY = Vocabulary.model_validate(vocabulary())


@routes.route("GET", "/vocabulary", auth="none", tag="meta", response=Vocabulary,
              summary="The court's words for roles, states, kinds and locations, and which "
                      "roles and states go together")
async def get_vocabulary(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    return respond(VOCABULARY.model_copy(update={
        "time_zone": settings.court_time_zone,
        "time_zone_label": zone_label(settings.court_zone, datetime.now(UTC))}))
