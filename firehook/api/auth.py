"""Who is calling: the app's client id, a session token or an outside JWT, the admin key.

MinCloud routes need ``X-Hydrogen-Client-ID`` equal to ``auth.client_id`` and, for anything
but signing in, ``Authorization: Hydrogen-r1 <token>``.  With ``auth.jwt_key`` set, a JWT
from the app's own identity provider is accepted in place of a session token (``sub`` is the
user id; ``"anonymous": true`` marks an anonymous user).  The ``/v1/`` API takes
``Authorization: Bearer <admin api key>``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

import jwt
from starlette.datastructures import Headers

from firehook.api.errors import Forbidden, Unauthorized
from firehook.api.users import UserStore
from firehook.config.http_settings import AdminSettings, AuthSettings
from firehook.invoker import jsonsafe

__all__ = ["AUTH_PREFIX", "Authenticator", "Caller"]

AUTH_PREFIX = "Hydrogen-r1"
CLIENT_ID_HEADER = "x-hydrogen-client-id"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller.  ``record_id`` is what invocation records keep."""

    user_id: int | str
    anonymous: bool
    kind: str  # "session", "jwt" or "admin"

    @property
    def record_id(self) -> str:
        return f"jwt:{self.user_id}" if self.kind == "jwt" else str(self.user_id)

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def request_user(self) -> dict[str, Any]:
        return {"id": self.user_id, "anonymous": self.anonymous}


ADMIN = Caller("admin", False, "admin")


def _split_authorization(headers: Headers) -> tuple[str, str] | None:
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if not token:
        return None
    return scheme.lower(), token


class Authenticator:
    """Checks credentials against the settings and the user store."""

    def __init__(self, users: UserStore, auth: AuthSettings, admin: AdminSettings) -> None:
        self.users = users
        self.auth = auth
        self.admin = admin

    # the app -------------------------------------------------------------------------------
    def check_client(self, headers: Headers) -> None:
        expected = self.auth.client_id
        if expected is None:
            raise Forbidden(
                "this firehook accepts no app clients yet: set FIREHOOK_AUTH__CLIENT_ID"
            )
        sent = headers.get(CLIENT_ID_HEADER)
        if sent is None:
            raise Unauthorized("missing X-Hydrogen-Client-ID")
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Unauthorized("unknown X-Hydrogen-Client-ID")

    def session_token(self, headers: Headers) -> str:
        """The token of ``Authorization: Hydrogen-r1 <token>`` (or Bearer), or 401."""
        parts = _split_authorization(headers)
        if parts is None:
            raise Unauthorized("not signed in: send Authorization: Hydrogen-r1 <token>")
        scheme, token = parts
        if scheme not in (AUTH_PREFIX.lower(), "bearer"):
            raise Unauthorized(f"unsupported Authorization scheme; use {AUTH_PREFIX}")
        return token

    def user(self, token: str) -> Caller:
        """The caller behind a session token or, when configured, a JWT; else 401."""
        if self.auth.jwt_key is not None and token.count(".") == 2:
            return self._jwt_caller(token)
        user = self.users.authenticate(token)
        return Caller(user.id, user.anonymous, "session")

    def _jwt_caller(self, token: str) -> Caller:
        assert self.auth.jwt_key is not None
        try:
            claims = jwt.decode(
                token,
                self.auth.jwt_key.get_secret_value(),
                algorithms=self.auth.jwt_algorithms,
                audience=self.auth.jwt_audience,
                issuer=self.auth.jwt_issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired: sign in again") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid token") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not 0 < len(sub) <= 60 or jsonsafe.problem(sub):
            raise Unauthorized("invalid token: sub must be a string of 1 to 60 characters")
        return Caller(sub, claims.get("anonymous") is True, "jwt")

    # the operator --------------------------------------------------------------------------
    def is_admin_key(self, headers: Headers) -> bool:
        key = self.admin.api_key
        parts = _split_authorization(headers)
        if key is None or parts is None or parts[0] != "bearer":
            return False
        return hmac.compare_digest(parts[1].encode(), key.get_secret_value().encode())

    def require_admin(self, headers: Headers) -> Caller:
        if self.admin.api_key is None:
            raise Forbidden("the admin API is off: set FIREHOOK_ADMIN__API_KEY")
        if _split_authorization(headers) is None:
            raise Unauthorized(
                "send the admin API key: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not self.is_admin_key(headers):
            raise Unauthorized("invalid admin API key", headers={"WWW-Authenticate": "Bearer"})
        return ADMIN
