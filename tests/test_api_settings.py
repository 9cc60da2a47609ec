"""The HTTP API's settings, as an operator writes them in the environment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from firehook.config import Settings


def test_http_auth_and_admin_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREHOOK_HTTP__PORT", "9000")
    monkeypatch.setenv("FIREHOOK_HTTP__CORS_ORIGINS", '["https://shop.example"]')
    monkeypatch.setenv("FIREHOOK_AUTH__CLIENT_ID", "a4d2d62965ddb57fa4xx")
    monkeypatch.setenv("FIREHOOK_AUTH__ALLOW_ANONYMOUS_INVOKE", "true")
    monkeypatch.setenv("FIREHOOK_AUTH__SESSION_TTL", "12h")
    monkeypatch.setenv("FIREHOOK_ADMIN__API_KEY", "s3cret")
    s = Settings()
    assert s.http.port == 9000 and s.http.host == "127.0.0.1"
    assert s.http.cors_origins == ["https://shop.example"]
    assert s.auth.client_id == "a4d2d62965ddb57fa4xx"
    assert s.auth.allow_anonymous_invoke is True
    assert s.auth.session_ttl == timedelta(hours=12)
    assert s.admin.api_key is not None and s.admin.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)  # secrets are not printed


def test_safe_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FIREHOOK_AUTH__CLIENT_ID", "FIREHOOK_ADMIN__API_KEY"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.auth.client_id is None and s.admin.api_key is None
    assert s.auth.allow_anonymous_invoke is False
    assert s.http.cors_origins == [] and s.http.max_body_bytes == 1024 * 1024
