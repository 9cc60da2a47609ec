"""Poison inputs over HTTP and the CLI: each is refused alone with a 400 (exit 2) and its
reason, nothing reaches the store it cannot hold, and the next good request answers.

Runs the real server (tests/api_support.py) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from firehook.api.errors import BadRequest
from firehook.api.users import AppUser
from firehook.config import Settings
from firehook.config.loader import parse_config
from tests.api_support import ADMIN_KEY, Served, served, serving
from tests.test_cli import cli

__all__ = ["served"]

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
JSON = {"Content-Type": "application/json"}
JOB = "/hserve/v1/cloud-function/job/"

# JSON text of a poison value -> what the refusal says
POISON = {
    "nested 1,000 deep": ("[" * 1000 + "]" * 1000, "nested deeper than 64"),
    "nested 100,000 deep": ("[" * 100_000 + "]" * 100_000, "nested deeper than 64"),
    "5,000 digits": ("9" * 5000, "more than 4300 digits"),
    "NaN": ("NaN", "NaN"),
    "Infinity": ('{"x": Infinity}', "Infinity"),
    "NUL": ('{"note": "a\\u0000b"}', "NUL"),
    "lone surrogate": ('["\\ud800"]', "lone surrogate"),
    "NUL in a key": ('{"a\\u0000": 1}', "NUL"),
}

FUNCTIONS = {
    "nulResult.py": """
        def main(event):
            return {"x": "a\\x00b"}
    """,
    "nulLog.py": """
        def main(event):
            print("before\\x00after")
            return "logged"
    """,
    "nulError.py": """
        def main(event):
            raise ValueError("bad\\x00value")
    """,
    "deepResult.py": """
        def main(event):
            value = []
            for _ in range(100):
                value = [value]
            return value
    """,
}


def add_functions(served: Served) -> None:
    folder = served.app.settings.functions_dir
    for name, source in FUNCTIONS.items():
        (folder / name).write_text(textwrap.dedent(source))


def error_msg(res: Any) -> str:
    body = res.json()
    assert body["status"] == "error", body
    message: str = body["error_msg"]
    return message


def invoke_raw(served: Served, token: str, data: str, name: str = "echo") -> Any:
    body = f'{{"function_name": "{name}", "data": {data}}}'.encode()
    return served.client.post(JOB, content=body, headers={**served.headers(token), **JSON})


# invoking -------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(POISON))
def test_poison_data_on_the_mincloud_route_is_400_and_the_server_goes_on(
    served: Served, case: str
) -> None:
    data, reason = POISON[case]
    token, _, _ = served.register()
    res = invoke_raw(served, token, data)
    assert res.status_code == 400, res.text
    assert reason in error_msg(res)
    good = served.invoke(token, "hello", {"name": "next"})
    assert good.status_code == 200 and good.json()["data"] == "hello next"


@pytest.mark.parametrize("case", list(POISON))
def test_poison_data_on_the_admin_invoke_route_is_400_sync_and_queued(
    served: Served, case: str
) -> None:
    data, reason = POISON[case]
    for sync in ("true", "false"):
        res = served.client.post(
            "/v1/functions/echo/invoke",
            content=f'{{"data": {data}, "sync": {sync}}}'.encode(),
            headers={**ADMIN, **JSON},
        )
        assert res.status_code == 400, res.text
        assert reason in error_msg(res)
    good = served.client.post("/v1/functions/hello/invoke", json={}, headers=ADMIN)
    assert good.status_code == 200 and good.json()["data"] == "hello world"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"delay": "999999999999s"}, "at most 36525 days"),
        ({"delay": 1e300}, "at most 36525 days"),
        ({"delay": {"seconds": 5}}, "expected a duration"),
        ({"at": "9999-12-31T23:59:59-23:59"}, "out of range"),
    ],
)
def test_a_delay_or_time_out_of_range_is_400(
    served: Served, body: dict[str, Any], reason: str
) -> None:
    res = served.client.post("/v1/functions/hello/invoke", json=body, headers=ADMIN)
    assert res.status_code == 400, res.text
    assert reason in error_msg(res)


def test_a_key_or_run_id_with_a_nul_is_refused_not_sent_to_the_database(served: Served) -> None:
    cancel = served.client.post(
        "/v1/invocations/cancel", json={"key": "order\x00-42"}, headers=ADMIN
    )
    assert cancel.status_code == 400 and "NUL" in error_msg(cancel)
    surrogate = served.client.post(
        "/v1/invocations/cancel",
        content=b'{"key": "order-\\udc00"}',
        headers={**ADMIN, **JSON},
    )
    assert surrogate.status_code == 400  # pydantic refuses it as a str
    in_function = served.client.post(
        "/v1/invocations/cancel", json={"key": "order-42", "function": "he\x00llo"}, headers=ADMIN
    )
    assert in_function.status_code == 404, in_function.text
    assert served.client.get("/v1/invocations/a%00b", headers=ADMIN).status_code == 404
    by_id = served.client.post("/v1/invocations/a%00b/cancel", headers=ADMIN)
    assert by_id.status_code == 404


def test_filters_and_run_ids_with_a_nul_are_refused_not_sent_to_the_database(
    served: Served,
) -> None:
    for params in ({"function": "he\x00llo"}, {"event_type": "sdk\x00"}):
        listed = served.client.get("/v1/invocations", params=params, headers=ADMIN)
        assert listed.status_code == 400 and "NUL" in error_msg(listed)
        replay = served.client.post("/v1/invocations/replay", json=params, headers=ADMIN)
        assert replay.status_code == 400 and "NUL" in error_msg(replay)
    by_id = served.client.post("/v1/invocations/replay", json={"ids": ["a\x00b"]}, headers=ADMIN)
    assert by_id.status_code == 404, by_id.text


def test_an_idempotency_key_with_a_lone_surrogate_is_refused_by_the_dispatcher(
    served: Served,
) -> None:
    from firehook.invoker.dispatch import InvokeRequest
    from firehook.invoker.envelope import InvalidParams

    with pytest.raises(InvalidParams, match="lone surrogate"):
        served.app.dispatcher.enqueue(InvokeRequest("hello"), key="order-\udc00")
    with pytest.raises(InvalidParams, match="NUL"):
        served.app.dispatcher.enqueue(InvokeRequest("hello"), key="order-\x00")


# what a sync run produced: always recorded, never "try again" -------------------------------
@pytest.mark.parametrize(
    ("function", "status", "check"),
    [
        ("nulResult", "execution_failed", "NUL"),
        ("deepResult", "execution_failed", "nested deeper than 64"),
        ("nulError", "execution_failed", "bad\\u0000value"),
        ("nulLog", "fulfilled", "before\\u0000after"),
    ],
)
def test_a_sync_run_whose_output_the_store_cannot_hold_is_recorded(
    served: Served, function: str, status: str, check: str
) -> None:
    add_functions(served)
    token, _, _ = served.register()
    res = served.invoke(token, function)
    assert res.status_code == 200, res.text
    job_id = res.headers["X-Firehook-Job-Id"]
    row = served.app.store.get(job_id)
    assert row is not None and row.status == status
    if status == "fulfilled":
        assert res.json()["data"] == "logged" and row.logs is not None and check in row.logs
    else:
        assert res.json()["code"] == 1 and check in res.json()["error"]["message"]
        assert row.error is not None and check in row.error["message"]
    assert served.invoke(token, "hello").status_code == 200


def test_a_sync_run_the_database_refuses_as_data_is_still_recorded(served: Served) -> None:
    from firehook.invoker.dispatch import InvokeRequest

    # caller ids are at most 64 characters: PostgreSQL refuses a longer one (SQLite keeps it)
    outcome = served.app.dispatcher.run_sync(InvokeRequest("hello", caller_user_id="u" * 100))
    assert outcome.job_id is not None
    row = served.app.store.get(outcome.job_id)
    assert row is not None and row.status == outcome.status
    if served.app.engine.dialect.name == "postgresql":
        assert row.status == "execution_failed" and row.error is not None
        assert "could not be recorded as it was" in row.error["message"]
        assert outcome.envelope.error is not None and row.caller_user_id is None
    else:
        assert row.status == "fulfilled" and row.result == "hello world"


# accounts -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "password"),
    [("nul\x00user", "s3cret-pass"), ("ctrl\x07user", "s3cret-pass")],
)
def test_a_username_with_control_characters_is_400(
    served: Served, username: str, password: str
) -> None:
    for route in ("/hserve/v2.1/register/username/", "/hserve/v2.1/login/username/"):
        res = served.client.post(
            route, json={"username": username, "password": password}, headers=served.headers()
        )
        assert res.status_code == 400, res.text
        assert "control characters" in error_msg(res)


@pytest.mark.parametrize(
    "route",
    ["/hserve/v2.1/register/username/", "/v1/invocations/cancel", "/v1/invocations/replay"],
)
def test_deep_bodies_on_the_other_routes_are_400(served: Served, route: str) -> None:
    body = '{"key": ' + "[" * 100_000 + "]" * 100_000 + "}"
    headers = {**served.headers(), **ADMIN, **JSON}
    res = served.client.post(route, content=body.encode(), headers=headers)
    assert res.status_code == 400, res.text
    assert served.client.get("/v1/functions?check=false", headers=ADMIN).status_code == 200


def test_a_lone_surrogate_in_a_username_or_password_is_refused_by_the_user_store(
    served: Served,
) -> None:
    # over HTTP pydantic refuses such a str already; the store refuses it for any caller
    users = served.ctx.users
    for call in (users.register, users.login):
        with pytest.raises(BadRequest, match="surrogate"):
            call("sur\ud800", "s3cret-pass")
        with pytest.raises(BadRequest, match="surrogate"):
            call("someone", "s3cret-\ud800")


def test_usernames_are_one_account_whatever_their_case_or_width(served: Served) -> None:
    tag = secrets.token_hex(3)
    creds = {"username": f"ALICE-{tag}", "password": "s3cret-pass"}
    first = served.client.post(
        "/hserve/v2.1/register/username/", json=creds, headers=served.headers()
    )
    assert first.status_code == 201, first.text
    wide = "".join(chr(ord(c) + 0xFEE0) for c in "alice")  # ａｌｉｃｅ
    login = served.client.post(
        "/hserve/v2.1/login/username/",
        json={"username": f"{wide}-{tag}", "password": "s3cret-pass"},
        headers=served.headers(),
    )
    assert login.status_code == 200, login.text
    assert login.json()["user_id"] == first.json()["user_id"]
    again = served.client.post(
        "/hserve/v2.1/register/username/",
        json={"username": f"alice-{tag}", "password": "other-pass"},
        headers=served.headers(),
    )
    assert again.status_code == 409


def test_a_user_registered_before_normalisation_still_signs_in(served: Served) -> None:
    tag = secrets.token_hex(3)
    table = AppUser.__table__  # type: ignore[attr-defined]
    with served.app.engine.begin() as conn:
        conn.execute(
            table.insert().values(
                username=f"Bob-{tag}",
                password_hash=served.ctx.users.hasher.hash("s3cret-pass"),
                anonymous=False,
            )
        )
    login = served.client.post(
        "/hserve/v2.1/login/username/",
        json={"username": f"BOB-{tag}", "password": "s3cret-pass"},
        headers=served.headers(),
    )
    assert login.status_code == 200, login.text
    taken = served.client.post(
        "/hserve/v2.1/register/username/",
        json={"username": f"bob-{tag}", "password": "s3cret-pass"},
        headers=served.headers(),
    )
    assert taken.status_code == 409


def test_database_errors_never_carry_the_sql_parameters(engine: Engine) -> None:
    secret_hash = f"$argon2id$secret-{secrets.token_hex(4)}"
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE leak_probe (name TEXT PRIMARY KEY, hash TEXT)"))
        conn.execute(text("INSERT INTO leak_probe VALUES ('x', 'y')"))
    with pytest.raises(SQLAlchemyError) as caught, engine.begin() as conn:
        conn.execute(
            text("INSERT INTO leak_probe VALUES (:name, :hash)"),
            {"name": "x", "hash": secret_hash},
        )
    assert secret_hash not in str(caught.value)
    assert "hidden" in str(caught.value)


# the admin API ------------------------------------------------------------------------------
def test_the_function_list_reports_a_function_whose_import_fails(served: Served) -> None:
    res = served.client.get("/v1/functions", headers=ADMIN)
    assert res.status_code == 200
    items = {i["name"]: i for i in res.json()["items"]}
    assert items["badImport"]["ok"] is False
    assert "module_that_does_not_exist" in items["badImport"]["error"]
    assert items["hello"]["ok"] is True and items["hello"]["error"] is None
    quick = served.client.get("/v1/functions", params={"check": "false"}, headers=ADMIN)
    assert {i["name"]: i["ok"] for i in quick.json()["items"]}["badImport"] is True


def test_source_keys_and_hook_secrets_are_secrets() -> None:
    s = Settings(triggers={"source_keys": {"shop": "k-shop"}, "hook_secrets": {"pay": "k-pay"}})
    assert isinstance(s.triggers.source_keys["shop"], SecretStr)
    assert isinstance(s.triggers.hook_secrets["pay"], SecretStr)
    shown = repr(s) + str(s.model_dump())
    assert "k-shop" not in shown and "k-pay" not in shown


# events and hooks -----------------------------------------------------------------------------
RULES = """
version: 1
triggers:
  - name: audit-orders
    on: {table: orders, events: [on_create]}
    invoke: echo
  - name: pay
    on: {hook: pay}
    invoke: echo
  - name: open-hook
    on: {hook: ping}
    invoke: echo
"""
SHOP = {"Authorization": "Bearer shop-key"}


@pytest.fixture(scope="module")
def events_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("events")
    overrides = {
        "broker_url": f"sqla+sqlite:///{tmp / 'events.db'}",
        "triggers": {"source_keys": {"shop": "shop-key"}, "hook_secrets": {"pay": "psst"}},
    }
    with serving("sqlite", tmp, **overrides) as s:
        s.app.rules_store.apply(parse_config(textwrap.dedent(RULES)).config, "test")
        yield s


def record_event(data: str, type_: str = "firehook.record.on_create") -> bytes:
    change = f'{{"table": "orders", "event": "on_create", "after": {{"v": {data}}}}}'
    return f'{{"id": "e1", "source": "shop", "type": "{type_}", "data": {change}}}'.encode()


@pytest.mark.parametrize("case", list(POISON))
def test_poison_events_are_400_and_the_next_event_goes_through(
    events_api: Served, case: str
) -> None:
    data, reason = POISON[case]
    res = events_api.client.post("/v1/events", content=record_event(data), headers={**SHOP, **JSON})
    assert res.status_code == 400, res.text
    assert reason in error_msg(res)
    good = events_api.client.post("/v1/events", content=record_event("1"), headers={**SHOP, **JSON})
    assert good.status_code == 202, good.text


@pytest.mark.parametrize("case", list(POISON))
def test_poison_webhook_bodies_are_400_without_internals(events_api: Served, case: str) -> None:
    data, reason = POISON[case]
    res = events_api.client.post("/v1/hooks/ping", content=data.encode(), headers=JSON)
    assert res.status_code == 400, res.text
    message = error_msg(res)
    assert reason in message
    assert "sqla" not in message and "/" not in message.replace("/v1/hooks", "")
    assert events_api.client.post("/v1/hooks/ping", json={"ok": 1}).status_code == 202


def test_a_source_key_cannot_publish_hook_events(events_api: Served) -> None:
    forged = {"id": "f1", "source": "shop", "type": "firehook.hook", "subject": "pay", "data": {}}
    for headers in (SHOP, ADMIN):
        res = events_api.client.post("/v1/events", json=forged, headers=headers)
        assert res.status_code == 403, res.text
        assert "/v1/hooks/" in error_msg(res)
    batch = [json.loads(record_event("1")), forged]
    mixed = events_api.client.post("/v1/events", json=batch, headers=SHOP)
    assert mixed.status_code == 403
    # the hook itself still takes its secret
    assert events_api.client.post("/v1/hooks/pay", json={}).status_code == 401
    ok = events_api.client.post("/v1/hooks/pay", json={}, headers={"X-Hook-Secret": "psst"})
    assert ok.status_code == 202


def test_the_key_is_checked_before_the_body_is_read(events_api: Served) -> None:
    big = b"[" + b"1," * 400_000 + b"{oops"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        res = events_api.client.post("/v1/events", content=big, headers={**headers, **JSON})
        assert res.status_code == 401, res.text


def test_a_broker_outage_answers_503_without_its_address(tmp_path: Path) -> None:
    with serving("sqlite", tmp_path, broker_url="amqp://guest:guest@127.0.0.1:1//") as s:
        event = record_event("1")
        res = s.client.post("/v1/events", content=event, headers={**ADMIN, **JSON})
        assert res.status_code == 503
        message = error_msg(res)
        assert "broker" in message
        assert "127.0.0.1" not in message and "amqp" not in message and "/" not in message


# the CLI --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    assert cli(folder, "init").returncode == 0
    return folder


@pytest.mark.parametrize("case", ["nested 1,000 deep", "5,000 digits", "NaN", "NUL"])
def test_poison_cli_data_exits_2_with_the_reason(project: Path, case: str) -> None:
    data, reason = POISON[case]
    inline = cli(project, "invoke", "helloWorld", "--data", data)
    assert inline.returncode == 2, inline.stderr
    assert "--data is not valid JSON" in inline.stderr and reason in inline.stderr
    assert "Traceback" not in inline.stderr
    (project / "params.json").write_text(data)
    from_file = cli(project, "invoke", "helloWorld", "--data-file", "params.json", "--async")
    assert from_file.returncode == 2, from_file.stderr
    assert "--data-file params.json" in from_file.stderr and reason in from_file.stderr


def test_poison_emit_records_exit_2_with_the_reason(project: Path) -> None:
    deep = '{"a": ' + "[" * 1000 + "]" * 1000 + "}"
    res = cli(project, "emit", "orders", "on_create", "--after", deep)
    assert res.returncode == 2, res.stderr
    assert "--after is not valid JSON: JSON nested deeper than 64" in res.stderr
