"""Integrations' API tokens under /api/v1/tokens: administrators create, list and revoke them.

The secret is in the creation's answer only; the registry keeps its hash (courtrooms/tokens.py).
"""

from __future__ import annotations

from aiohttp import web

from courtrooms.access import Permission
from courtrooms.models import ApiToken
from courtrooms.schemas import ApiTokenCreated, ApiTokenIn, ApiTokenList, ApiTokenOut
from web.endpoints import API_PREFIX, CALLER, EndpointTable, body, path_id, respond
from web.keys import API_TOKENS, STAFF_ACCOUNTS

routes = EndpointTable(API_PREFIX)


async def _out(request: web.Request, tokens: list[ApiToken]) -> list[ApiTokenOut]:
    names = await request.app[STAFF_ACCOUNTS].names(t.created_by for t in tokens)
    return [ApiTokenOut.model_validate(t).model_copy(
        update={"created_by_name": names.get(t.created_by)}) for t in tokens]


@routes.route("POST", "/tokens", body=ApiTokenIn, staff=Permission.MANAGE_TOKENS,
              response=ApiTokenCreated, status=201, errors=(422,),
              summary="Create an integration's API token (its secret is in this answer only)",
              tag="tokens")
async def create_token(request: web.Request) -> web.Response:
    made = await request.app[API_TOKENS].add(await body(request, ApiTokenIn),
                                              request[CALLER].actor)
    (out,) = await _out(request, [made.token])
    return respond(ApiTokenCreated(**out.model_dump(), secret=made.secret), 201)


@routes.route("GET", "/tokens", staff=Permission.MANAGE_TOKENS, response=ApiTokenList,
              summary="The API tokens, revoked ones too, oldest first (never their secrets)",
              tag="tokens")
async def list_tokens(request: web.Request) -> web.Response:
    listed = await _out(request, await request.app[API_TOKENS].tokens())
    return respond(ApiTokenList(items=listed))


@routes.route("POST", "/tokens/{id}/revoke", staff=Permission.MANAGE_TOKENS,
              response=ApiTokenOut, errors=(404, 409),
              summary="Revoke an API token: its next request is refused", tag="tokens")
async def revoke_token(request: web.Request) -> web.Response:
    token = await request.app[API_TOKENS].revoke(path_id(request), request[CALLER].actor)
    (out,) = await _out(request, [token])
    return respond(out)
