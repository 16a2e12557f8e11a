"""Staff accounts under /api/v1/accounts: the judges and clerks a clerk may give a hearing."""

from __future__ import annotations

from aiohttp import web

from courtrooms.access import Permission, reach
from courtrooms.errors import NotPermitted
from courtrooms.models import StaffRole
from courtrooms.schemas import BenchAccountList, BenchAccountOut, BenchAccountQuery
from web.endpoints import API_PREFIX, EndpointTable, query, respond, staff_member
from web.keys import STAFF_ACCOUNTS

routes = EndpointTable(API_PREFIX)


@routes.route("GET", "/accounts", staff=Permission.SCHEDULE, query=BenchAccountQuery,
              response=BenchAccountList, errors=(403,), tag="accounts",
              summary="The judges and clerks a hearing may be given (enabled accounts of the "
                      "court, and of no court), by name")
async def bench_accounts(request: web.Request) -> web.Response:
    q = query(request, BenchAccountQuery)
    scheduling = reach(staff_member(request), Permission.SCHEDULE)
    court_id = q.court_id
    if not scheduling.everything:
        if court_id is not None and court_id != scheduling.court_id:
            raise NotPermitted("this account schedules only its own court's hearings: it "
                               "lists only that court's judges and clerks",
                               needs=["the hearing's court"])
        court_id = scheduling.court_id
    found = await request.app[STAFF_ACCOUNTS].bench(
        court_id, None if q.role is None else StaffRole(q.role))
    if not scheduling.everything:  # a clerk of no court: those of no court
        found = [a for a in found if a.court_id in (None, court_id)]
    return respond(BenchAccountList(items=[BenchAccountOut.model_validate(a) for a in found]))
