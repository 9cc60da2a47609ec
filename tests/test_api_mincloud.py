"""The MinCloud protocol over HTTP against the real app, on SQLite and on PostgreSQL:
sign-in, invoke (sync, async, timeout), who may call, and every error status."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from firehook.api.users import AppSession
from firehook.config import FunctionOptions, utcnow, write_tx
from tests import api_support
from tests.api_support import ADMIN_KEY, Served

served = api_support.served

JOB = "/hserve/v1/cloud-function/job/"


def error_msg(res: object) -> str:
    body = res.json()  # type: ignore[attr-defined]
    assert set(body) == {"status", "error_msg"}, body
    assert body["status"] == "error"
    msg: str = body["error_msg"]
    return msg


# signing in -----------------------------------------------------------------------------------
def test_anonymous_login_answers_what_the_sdk_reads(served: Served) -> None:
    res = served.client.post("/hserve/v2.0/login/anonymous/", headers=served.headers())
    assert res.status_code == 201
    body = res.json()
    assert body["expires_in"] == 30 * 24 * 3600
    assert isinstance(body["user_id"], int) and len(body["token"]) >= 40
    me = served.client.get(
        f"/hserve/v2.5/user/info/{body['user_id']}/", headers=served.headers(body["token"])
    )
    assert me.status_code == 200
    assert me.json()["id"] == body["user_id"] and me.json()["_anonymous"] is True


def test_register_then_login_with_the_password(served: Served) -> None:
    token, user_id, username = served.register("correct horse")
    res = served.client.post(
        "/hserve/v2.1/login/username/",
        json={"username": username, "password": "correct horse"},
        headers=served.headers(),
    )
    assert res.status_code == 200
    assert res.json()["user_id"] == user_id and res.json()["token"] != token
    me = served.client.get(f"/hserve/v2.5/user/info/{user_id}/", headers=served.headers(token))
    assert me.json() == {
        "id": user_id,
        "_username": username,
        "_anonymous": False,
        "created_at": me.json()["created_at"],
    }


def test_a_wrong_password_and_an_unknown_user_get_the_same_401(served: Served) -> None:
    _, _, username = served.register()
    for name in (username, "nobody-at-all"):
        res = served.client.post(
            "/hserve/v2.1/login/username/",
            json={"username": name, "password": "not-the-password"},
            headers=served.headers(),
        )
        assert res.status_code == 401
        assert error_msg(res) == "wrong username or password"


def test_a_taken_username_is_409_and_a_short_password_400(served: Served) -> None:
    _, _, username = served.register()
    again = served.client.post(
        "/hserve/v2.1/register/username/",
        json={"username": username, "password": "another-pass"},
        headers=served.headers(),
    )
    assert again.status_code == 409 and "taken" in error_msg(again)
    short = served.client.post(
        "/hserve/v2.1/register/username/",
        json={"username": "shorty", "password": "123"},
        headers=served.headers(),
    )
    assert short.status_code == 400 and "6 to 256" in error_msg(short)


def test_another_users_info_is_not_found(served: Served) -> None:
    token, user_id, _ = served.register()
    res = served.client.get(
        f"/hserve/v2.5/user/info/{user_id + 1000}/", headers=served.headers(token)
    )
    assert res.status_code == 404


def test_sessions_are_stored_hashed_and_logout_ends_them(served: Served) -> None:
    token, _, _ = served.register()
    with served.app.engine.connect() as conn:
        stored = conn.execute(AppSession.__table__.select()).mappings().all()  # type: ignore[attr-defined]
    assert token not in {r["token_hash"] for r in stored}
    assert served.invoke(token, "hello").status_code == 200  # the session is now cached
    res = served.client.post("/hserve/v2.0/session/destroy/", headers=served.headers(token))
    assert res.status_code == 204
    after = served.invoke(token, "hello")
    assert after.status_code == 401 and "sign in again" in error_msg(after)


# invoking -------------------------------------------------------------------------------------
def test_sync_invoke_answers_the_envelope_and_records_the_run(served: Served) -> None:
    token, user_id, _ = served.register()
    res = served.invoke(token, "hello", {"name": "allen"})
    assert res.status_code == 200
    assert res.json() == {"code": 0, "data": "hello allen", "error": {}}
    row = served.app.store.get(res.headers["X-Firehook-Job-Id"])
    assert row is not None and row.status == "fulfilled"
    assert row.event_type == "sdk" and row.caller_user_id == str(user_id)


def test_the_function_sees_who_called_over_http(served: Served) -> None:
    token, user_id, _ = served.register()
    res = served.invoke(
        token, "echo", {"a": 1}, headers={**served.headers(token), "User-Agent": "ua/1"}
    )
    event = res.json()["data"]
    assert event["event_type"] == "sdk" and event["data"] == {"a": 1}
    assert event["request"] == {
        "meta": {"ip_address": "127.0.0.1", "user_agent": "ua/1"},
        "user": {"id": user_id, "anonymous": False},
    }


def test_a_function_s_own_error_and_stack_are_returned_with_200(served: Served) -> None:
    token, _, _ = served.register()
    res = served.invoke(token, "boom")
    assert res.status_code == 200
    body = res.json()
    assert body["code"] == 1 and body["data"] is None
    assert body["error"]["type"] == "execution_failed"
    assert "boom" in body["error"]["message"] and "helper" in body["error"]["stack"]
    assert "firehook" not in body["error"]["stack"] and "invoker" not in body["error"]["stack"]


def test_a_run_past_the_sync_limit_is_killed_and_answers_deadline_exceeded(served: Served) -> None:
    token, _, _ = served.register()
    t0 = time.monotonic()
    res = served.invoke(token, "spin")
    elapsed = time.monotonic() - t0
    assert res.status_code == 200
    assert res.json()["error"]["type"] == "deadline_exceeded"
    assert 0.9 < elapsed < 3.0  # the sync limit is 1 s in these tests


def test_async_invoke_answers_at_once_and_the_job_reaches_fulfilled(served: Served) -> None:
    token, _, _ = served.register()
    res = served.invoke(token, "hello", {"name": "later"}, sync=False)
    assert res.status_code == 200
    assert res.json() == {"code": 0, "data": {"status": "ok"}, "error": {}}
    job_id = res.headers["X-Firehook-Job-Id"]
    deadline = time.monotonic() + 15
    view = {}
    while time.monotonic() < deadline:
        view = served.client.get(f"/v1/invocations/{job_id}", headers=served.headers(token)).json()
        if view["status"] == "fulfilled":
            break
        time.sleep(0.05)
    assert view.get("status") == "fulfilled", view
    assert view["result"] == {"code": 0, "data": "hello later", "error": {}}
    row = served.app.store.get(job_id)
    assert row is not None and row.timeout_ms == 300_000  # the async limit


def test_only_the_caller_or_the_admin_reads_a_run(served: Served) -> None:
    owner, _, _ = served.register()
    other, _, _ = served.register()
    job_id = served.invoke(owner, "hello").headers["X-Firehook-Job-Id"]
    url = f"/v1/invocations/{job_id}"
    assert served.client.get(url, headers=served.headers(owner)).status_code == 200
    assert served.client.get(url, headers=served.headers(other)).status_code == 404
    assert served.client.get(url).status_code == 401
    admin = served.client.get(url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert admin.status_code == 200 and admin.json()["logs"] is not None


def test_an_unknown_function_is_404(served: Served) -> None:
    token, _, _ = served.register()
    for sync in (True, False):
        res = served.invoke(token, "noSuchFunction", sync=sync)
        assert res.status_code == 404 and "noSuchFunction" in error_msg(res)
    assert served.invoke(token, "../etc/passwd").status_code == 404


# who may call ---------------------------------------------------------------------------------
def test_no_session_is_401_and_an_anonymous_user_is_403_by_default(served: Served) -> None:
    res = served.invoke(None, "hello")
    assert res.status_code == 401 and "not signed in" in error_msg(res)
    anon = served.anonymous()
    res = served.invoke(anon, "hello")
    assert res.status_code == 403 and "anonymous" in error_msg(res)
    assert served.invoke(anon, "hello", sync=False).status_code == 403


def test_the_setting_lets_anonymous_users_call(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(served.app.settings.auth, "allow_anonymous_invoke", True)
    res = served.invoke(served.anonymous(), "echo")
    assert res.status_code == 200
    assert res.json()["data"]["request"]["user"]["anonymous"] is True


def test_a_function_s_option_opens_or_closes_it_for_anonymous_users(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {
        "hello": FunctionOptions(allow_anonymous=True),
        "echo": FunctionOptions(allow_anonymous=False),
    }
    monkeypatch.setattr(served.app, "function_options", lambda n: options.get(n, FunctionOptions()))
    anon = served.anonymous()
    assert served.invoke(anon, "hello").status_code == 200
    assert served.invoke(anon, "boom").status_code == 403
    monkeypatch.setattr(served.app.settings.auth, "allow_anonymous_invoke", True)
    assert served.invoke(anon, "echo").status_code == 403
    assert served.invoke(anon, "boom").status_code == 200


def test_forged_and_expired_tokens_are_401(served: Served) -> None:
    assert served.invoke("forged-token-" + "x" * 30, "hello").status_code == 401
    token, user_id, _ = served.register()
    with write_tx(served.app.engine) as conn:
        conn.execute(
            update(AppSession.__table__)  # type: ignore[attr-defined]
            .where(AppSession.__table__.c.user_id == user_id)  # type: ignore[attr-defined]
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    res = served.invoke(token, "hello")
    assert res.status_code == 401 and "expired" in error_msg(res)


def test_a_cached_session_still_expires_on_time(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _, _ = served.register()
    assert served.invoke(token, "hello").status_code == 200
    later = utcnow() + timedelta(days=31)
    monkeypatch.setattr(served.ctx.users, "clock", lambda: later)
    res = served.invoke(token, "hello")
    assert res.status_code == 401 and "expired" in error_msg(res)


def test_a_wrong_or_missing_client_id_is_401(served: Served) -> None:
    token, _, _ = served.register()
    wrong = served.invoke(token, "hello", headers=served.headers(token, client_id="other-app"))
    assert wrong.status_code == 401 and "Client-ID" in error_msg(wrong)
    missing = served.invoke(token, "hello", headers=served.headers(token, client_id=None))
    assert missing.status_code == 401
    login = served.client.post(
        "/hserve/v2.0/login/anonymous/", headers={"X-Hydrogen-Client-ID": "x"}
    )
    assert login.status_code == 401


# malformed requests ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"data": {}}', "function_name"),
        (b'{"function_name": 5}', "function_name"),
        (b'{"function_name": "hello", "sync": "yes"}', "sync"),
        (b"[1, 2]", "body"),
    ],
)
def test_malformed_bodies_are_400(served: Served, body: bytes, message: str) -> None:
    token, _, _ = served.register()
    headers = {**served.headers(token), "Content-Type": "application/json"}
    res = served.client.post(JOB, content=body, headers=headers)
    assert res.status_code == 400 and message in error_msg(res)


def test_an_oversize_body_is_413_by_length_and_when_streamed(served: Served) -> None:
    token, _, _ = served.register()
    big = {"function_name": "hello", "data": "x" * (2 * 1024 * 1024)}
    res = served.client.post(JOB, json=big, headers=served.headers(token))
    assert res.status_code == 413 and "larger than" in error_msg(res)

    def chunks():  # no Content-Length: the size is counted as it arrives
        yield b'{"function_name": "hello", "data": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    streamed = served.client.post(JOB, content=chunks(), headers=served.headers(token))
    assert streamed.status_code == 413
