"""The MinCloud sign-in routes the SDK calls: anonymous, username register/login, me, logout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from firehook.api.context import ApiContext, client_ip
from firehook.api.errors import NotFound

__all__ = ["Credentials", "router"]


class Credentials(BaseModel):
    model_config = ConfigDict(extra="ignore")

    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=256)


class LoginAnswer(BaseModel):
    token: str
    user_id: int
    expires_in: int = Field(description="seconds")
    expired_at: int = Field(description="Unix time")


def router(ctx: ApiContext) -> APIRouter:
    async def app_client(request: Request) -> None:
        ctx.auth.check_client(request.headers)

    async def signin_gate(request: Request) -> None:
        ctx.signin_per_ip.check(client_ip(request), "address")
        ctx.auth.check_client(request.headers)

    r = APIRouter(tags=["MinCloud SDK"])

    @r.post(
        "/hserve/v2.0/login/anonymous/",
        status_code=201,
        summary="Sign in as a new anonymous user",
        dependencies=[Depends(signin_gate)],
    )
    def anonymous_login() -> LoginAnswer:
        return LoginAnswer(**ctx.users.create_anonymous().login_body())

    @r.post(
        "/hserve/v2.1/register/username/",
        status_code=201,
        summary="Register with a username and password",
        dependencies=[Depends(signin_gate)],
        responses={409: {"description": "the username is taken"}},
    )
    def register(body: Credentials) -> LoginAnswer:
        return LoginAnswer(**ctx.users.register(body.username, body.password).login_body())

    @r.post(
        "/hserve/v2.1/login/username/",
        summary="Sign in with a username and password",
        dependencies=[Depends(signin_gate)],
        responses={401: {"description": "wrong username or password"}},
    )
    def login(body: Credentials) -> LoginAnswer:
        return LoginAnswer(**ctx.users.login(body.username, body.password).login_body())

    @r.get(
        "/hserve/v2.5/user/info/{user_id}/",
        summary="The signed-in user (only your own)",
        dependencies=[Depends(app_client)],
    )
    def user_info(request: Request, user_id: str) -> dict[str, Any]:
        token = ctx.auth.session_token(request.headers)
        caller = ctx.auth.user(token)
        if str(caller.user_id) != user_id:
            raise NotFound("user not found")
        if caller.kind == "jwt":
            return {"id": caller.user_id, "_anonymous": caller.anonymous}
        return ctx.users.authenticate(token).info()

    @r.post(
        "/hserve/v2.0/session/destroy/",
        status_code=204,
        summary="Sign out (the token stops working)",
        dependencies=[Depends(app_client)],
    )
    def logout(request: Request) -> Response:
        token = ctx.auth.session_token(request.headers)
        ctx.auth.user(token)  # 401 for a token that is not a live session
        ctx.users.logout(token)
        return Response(status_code=204)

    return r
