"""Settings of the HTTP API: where it listens, its limits, who may sign in and call.

``FIREHOOK_HTTP__PORT=8080``, ``FIREHOOK_AUTH__CLIENT_ID=...``, ``FIREHOOK_ADMIN__API_KEY=...``.
A rate of 0 turns that limit off.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field, SecretStr

from firehook.config.durations import Duration
from firehook.config.envlists import CommaList

__all__ = ["AdminSettings", "AuthSettings", "HttpSettings"]


class HttpSettings(BaseModel):
    """The HTTP listener (``firehook api``, ``firehook serve``) and its limits."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="larger bodies get 413")
    cors_origins: CommaList = Field(
        default=[], description="origins allowed to call from a browser: https://a,https://b"
    )
    invoke_rate_per_user: float = Field(default=10.0, ge=0, description="invokes/s; 0 = off")
    invoke_burst_per_user: int = Field(default=20, ge=1)
    invoke_rate_per_ip: float = Field(default=50.0, ge=0, description="invokes/s; 0 = off")
    invoke_burst_per_ip: int = Field(default=100, ge=1)
    signin_rate_per_ip: float = Field(
        default=2.0, ge=0, description="sign-ins and registrations/s per IP; 0 = off"
    )
    signin_burst_per_ip: int = Field(default=20, ge=1)


class AuthSettings(BaseModel):
    """App users: the MinCloud client id, sessions, anonymous callers, outside JWTs."""

    client_id: str | None = Field(
        default=None, description="the X-Hydrogen-Client-ID the SDK must send"
    )
    allow_anonymous_invoke: bool = False
    session_ttl: Duration = Field(default=timedelta(days=30), gt=timedelta(0))
    session_cache: Duration = Field(
        default=timedelta(seconds=5),
        ge=timedelta(0),
        description="how long an API process trusts a session it read; 0 = read every call",
    )
    jwt_key: SecretStr | None = Field(
        default=None, description="HMAC secret or PEM public key; set to accept outside JWTs"
    )
    jwt_algorithms: CommaList = ["HS256"]
    jwt_audience: str | None = None
    jwt_issuer: str | None = None


class AdminSettings(BaseModel):
    """The ``/v1/`` REST API; off (403) until an API key is set."""

    api_key: SecretStr | None = Field(default=None, description="sent as Authorization: Bearer")
