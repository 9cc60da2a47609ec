"""Limits and hardening of the HTTP API: rate limits, CORS, outside JWTs, the client id
setting, and errors that never leak firehook's own traces."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from pydantic import SecretStr

from firehook.api.limits import RateLimiter
from firehook.config.errors import DatabaseError
from firehook.invoker.dispatch import InvokeRequest, Outcome
from tests import api_support
from tests.api_support import Served, serving

served = api_support.served_sqlite
JWT_KEY = "a-test-secret-of-at-least-32-bytes!!"


# rate limits ----------------------------------------------------------------------------------
def test_a_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.wait_time("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_time("a") == pytest.approx(0.5)
    assert limiter.wait_time("b") == 0.0  # keys are independent
    now[0] += 0.5
    assert limiter.wait_time("a") == 0.0
    assert RateLimiter(0, 1).wait_time("a") == 0.0  # rate 0: off


def test_invoke_is_rate_limited_per_user_with_retry_after(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served.ctx, "invoke_per_user", RateLimiter(0.5, 2, what="invokes"))
    token, _, _ = served.register()
    codes = [served.invoke(token, "hello").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    res = served.invoke(token, "hello")
    assert res.status_code == 429 and res.headers["Retry-After"] == "2"
    assert "at most 0.5/s" in res.json()["error_msg"]
    other, _, _ = served.register()
    assert served.invoke(other, "hello").status_code == 200  # another user is not held back


def test_invoke_is_rate_limited_per_ip_before_anything_else(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served.ctx, "invoke_per_ip", RateLimiter(1, 1, what="invokes"))
    token, _, _ = served.register()
    assert served.invoke(token, "hello").status_code == 200
    res = served.invoke(None, "hello")  # not even signed in
    assert res.status_code == 429 and int(res.headers["Retry-After"]) >= 1


def test_sign_in_is_rate_limited_per_ip(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(served.ctx, "signin_per_ip", RateLimiter(0.1, 1, what="sign-ins"))
    url = "/hserve/v2.0/login/anonymous/"
    assert served.client.post(url, headers=served.headers()).status_code == 201
    res = served.client.post(url, headers=served.headers())
    assert res.status_code == 429 and res.headers["Retry-After"] == "10"


# errors ---------------------------------------------------------------------------------------
def test_an_unexpected_error_answers_500_without_firehook_s_trace(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_req: InvokeRequest) -> Outcome:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(served.app.dispatcher, "run_sync", broken)
    token, _, _ = served.register()
    res = served.invoke(token, "hello")
    assert res.status_code == 500
    assert res.json() == {"status": "error", "error_msg": "internal error"}
    assert "secret" not in res.text and "Traceback" not in res.text


def test_a_database_outage_answers_503(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(_req: InvokeRequest) -> Outcome:
        raise DatabaseError("could not record the run: connection refused to db.internal:5432")

    monkeypatch.setattr(served.app.dispatcher, "run_sync", down)
    token, _, _ = served.register()
    res = served.invoke(token, "hello")
    assert res.status_code == 503 and "db.internal" not in res.text


# outside JWTs ---------------------------------------------------------------------------------
def _jwt(sub: str, key: str = JWT_KEY, expires_in: int = 60, **claims: object) -> str:
    payload = {"sub": sub, "exp": int(time.time()) + expires_in, **claims}
    return jwt.encode(payload, key, algorithm="HS256")


def test_a_jwt_from_the_app_s_identity_provider_may_invoke(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served.app.settings.auth, "jwt_key", SecretStr(JWT_KEY))
    res = served.invoke(_jwt("alice@idp"), "echo")
    assert res.status_code == 200
    assert res.json()["data"]["request"]["user"] == {"id": "alice@idp", "anonymous": False}
    row = served.app.store.get(res.headers["X-Firehook-Job-Id"])
    assert row is not None and row.caller_user_id == "jwt:alice@idp"
    bearer = {**served.headers(), "Authorization": f"Bearer {_jwt('bob')}"}
    assert served.invoke(None, "hello", headers=bearer).status_code == 200
    anon = served.invoke(_jwt("guest", anonymous=True), "hello")
    assert anon.status_code == 403


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (_jwt("alice", expires_in=-10), "expired"),
        (_jwt("alice", key="another-secret-of-at-least-32-bytes"), "invalid token"),
        (jwt.encode({"sub": "alice"}, JWT_KEY, algorithm="HS256"), "invalid token"),
    ],
)
def test_expired_forged_or_incomplete_jwts_are_401(
    served: Served, monkeypatch: pytest.MonkeyPatch, token: str, message: str
) -> None:
    monkeypatch.setattr(served.app.settings.auth, "jwt_key", SecretStr(JWT_KEY))
    res = served.invoke(token, "hello")
    assert res.status_code == 401 and message in res.json()["error_msg"]


def test_jwts_are_refused_unless_a_key_is_configured(served: Served) -> None:
    assert served.invoke(_jwt("alice"), "hello").status_code == 401


# settings that change the app -----------------------------------------------------------------
@pytest.fixture(scope="module")
def cors_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    http = {
        "cors_origins": ["http://app.example"],
        "invoke_rate_per_user": 0,
        "invoke_rate_per_ip": 0,
        "signin_rate_per_ip": 0,
    }
    with serving("sqlite", tmp_path_factory.mktemp("cors"), http=http) as s:
        yield s


def test_cors_preflight_and_answers_for_a_configured_origin(cors_served: Served) -> None:
    c = cors_served.client
    preflight = c.options(
        "/hserve/v1/cloud-function/job/",
        headers={
            "Origin": "http://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-hydrogen-client-id",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.example"
    assert "x-hydrogen-client-id" in preflight.headers["access-control-allow-headers"].lower()
    token, _, _ = cors_served.register()
    res = cors_served.invoke(
        token, "hello", headers={**cors_served.headers(token), "Origin": "http://app.example"}
    )
    assert res.headers["access-control-allow-origin"] == "http://app.example"
    assert "x-firehook-job-id" in res.headers["access-control-expose-headers"].lower()
    denied = c.options(
        "/hserve/v1/cloud-function/job/",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert denied.status_code == 400 and "access-control-allow-origin" not in denied.headers


def test_without_cors_origins_no_cors_headers_are_sent(served: Served) -> None:
    res = served.client.get("/openapi.json", headers={"Origin": "http://app.example"})
    assert res.status_code == 200 and "access-control-allow-origin" not in res.headers


def test_without_a_client_id_setting_the_sdk_routes_answer_403(tmp_path: Path) -> None:
    with serving("sqlite", tmp_path, auth={"client_id": None}) as s:
        res = s.client.post("/hserve/v2.0/login/anonymous/", headers=s.headers())
        assert res.status_code == 403 and "FIREHOOK_AUTH__CLIENT_ID" in res.json()["error_msg"]


def test_a_small_body_limit_applies_to_every_route(tmp_path: Path) -> None:
    with serving("sqlite", tmp_path, http={"max_body_bytes": 1024}) as s:
        body = {"username": "u" * 100, "password": "p" * 2000}
        res = s.client.post("/hserve/v2.1/register/username/", json=body, headers=s.headers())
        assert res.status_code == 413
        with httpx.Client(base_url=s.base_url, timeout=timedelta(seconds=10).total_seconds()) as c:
            assert c.get("/docs").status_code == 200
