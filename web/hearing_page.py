"""The participant's page behind each join link: device check, lobby, the hearing room, the end.

The page (templates/join.html) is the skeleton in Chinese; /static/join.js and the modules under
/static/hearing/ fill it from the signaling protocol. `?kiosk=1` (a prison terminal's kiosk
navigates here) makes the controls large and sends the kiosk back to `/terminal` when the
hearing ends.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from config.timezone import local_text
from courtrooms import labels
from courtrooms.errors import AccessDenied, HearingFinished
from courtrooms.models import Location, Role
from web.keys import REGISTRY, SETTINGS
from web.pages import render

STYLES = ("/static/devicecheck.css", "/static/hearing.css")
KIOSK_RETURN = "/static/hearing/kiosk-return.js"


def _kiosk(request: web.Request) -> bool:
    return request.query.get("kiosk") == "1"


def _refused(request: web.Request, heading: str, message: str, state: str,
             sign_url: str | None = None) -> web.Response:
    kiosk = _kiosk(request)
    return render(
        request, "join_refused.html", heading, status=403, styles=("/static/hearing.css",),
        body_attrs={"data-state": state, "data-kiosk": "1" if kiosk else None},
        scripts=(KIOSK_RETURN,) if kiosk else (),
        heading=heading, message=message, state=state, kiosk=kiosk, sign_url=sign_url,
    )


def _reason(refusal: AccessDenied, zone: ZoneInfo) -> str:
    """Why the link does not open, with its times in the court's local time."""
    opens, expired = refusal.details.get("opens_at"), refusal.details.get("expired_at")
    if isinstance(opens, str):
        at = local_text(datetime.fromisoformat(opens), zone)
        return f"本链接将于 {at} 开放，请届时再来。"
    if isinstance(expired, str):
        at = local_text(datetime.fromisoformat(expired), zone)
        return f"本链接已于 {at} 失效，请向法院索取新的链接。"
    return refusal.message


async def join(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    try:
        grant = await request.app[REGISTRY].resolve_join_token(token)
    except HearingFinished as e:
        # A closed hearing's record is read and signed with the same link (/sign).
        signable = e.details.get("state") == "closed" and isinstance(
            e.details.get("hearing_id"), str)
        return _refused(request, "庭审已结束", e.message, "ended",
                        sign_url=f"/sign/{e.details['hearing_id']}#{token}" if signable
                        else None)
    except AccessDenied as e:
        return _refused(request, "无法加入", _reason(e, request.app[SETTINGS].court_zone),
                        "error")
    h, p = grant.hearing, grant.participant
    attrs = {
        "data-state": "lobby" if p.role is Role.OBSERVER else "device-check",
        "data-token": token,
        "data-role": p.role.value,
        "data-participant-id": str(p.id),
        "data-hearing-id": str(h.id),
        "data-hearing-state": h.state.value,
        "data-kiosk": "1" if _kiosk(request) else None,
        # A detainee cannot switch the camera off or the page's language (kiosk discipline;
        # the server refuses the camera too).
        "data-in-prison": "1" if p.location is Location.PRISON else None,
        # The court has the last digits of their ID number: the page asks before joining.
        "data-id-digits": "1" if grant.needs_id_digits else None,
    }
    return render(
        request, "join.html", h.title, body_attrs=attrs, scripts=("/static/join.js",),
        styles=STYLES, hearing=h, participant=p, labels=labels.vocabulary(),
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/join/{token}", join)
