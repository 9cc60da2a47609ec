"""App users and their sessions, as the MinCloud SDK signs in.

Passwords are hashed with Argon2id (argon2-cffi's defaults).  A session token is 32 random
bytes shown to the client once; the table keeps only its SHA-256, so a leaked table holds no
usable token.  Sessions expire after ``auth.session_ttl``; expired rows are swept whenever a
new session is issued.

Usernames are compared in one form: NFKC, then case-folded (``ALICE``, ``Alice`` and
``ａｌｉｃｅ`` are one account), as they are stored at sign-up.  A row written before names were
normalised is still found at sign-in when its name differs only in ASCII case.  Control
characters (NUL included) and lone surrogates are refused with a 400.

A looked-up session is remembered in memory for ``cache_ttl`` (``auth.session_cache``, 5 s),
so a busy client costs one read per few seconds, not one per call.  Its expiry is still checked
on every call, and a logout forgets it at once in this process; another API process may accept
the logged-out token until its own entry runs out.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Column, Engine, Index, Text, delete, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Field, SQLModel

from firehook.api.errors import BadRequest, Conflict, Unauthorized
from firehook.config.db import UTCDateTime, utcnow, write_tx
from firehook.config.errors import DatabaseError
from firehook.invoker import jsonsafe

__all__ = [
    "AppSession",
    "AppUser",
    "Issued",
    "SessionUser",
    "UserStore",
    "hash_token",
    "normalise_username",
]

log = logging.getLogger(__name__)


class AppUser(SQLModel, table=True):
    """A user of the applications that call functions (not an operator of firehook)."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str | None = Field(default=None, max_length=150, unique=True)
    password_hash: str | None = Field(default=None, sa_column=Column(Text))
    anonymous: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AppSession(SQLModel, table=True):
    """A signed-in session; the token itself is never stored."""

    __tablename__ = "app_session"
    __table_args__ = (Index("ix_app_session_expires", "expires_at"),)

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


_users = AppUser.__table__  # type: ignore[attr-defined]
_sessions = AppSession.__table__  # type: ignore[attr-defined]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionUser:
    """The user behind a valid session token."""

    id: int
    username: str | None
    anonymous: bool
    created_at: datetime

    def info(self) -> dict[str, Any]:
        """The user object the SDK reads after each sign-in."""
        return {
            "id": self.id,
            "_username": self.username,
            "_anonymous": self.anonymous,
            "created_at": int(self.created_at.timestamp()),
        }


@dataclass(frozen=True, slots=True)
class Issued:
    """A new session: the token (shown once) and when it expires."""

    token: str
    user: SessionUser
    expires_at: datetime
    ttl: timedelta

    def login_body(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "user_id": self.user.id,
            "expires_in": int(self.ttl.total_seconds()),
            "expired_at": int(self.expires_at.timestamp()),
        }


class UserStore:
    """Users and sessions in one database; ``clock`` is injectable for tests."""

    def __init__(
        self,
        engine: Engine,
        session_ttl: timedelta,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] = utcnow,
        cache_ttl: timedelta = timedelta(seconds=5),
        cache_size: int = 10_000,
    ) -> None:
        self.engine = engine
        self.session_ttl = session_ttl
        self.hasher = hasher or PasswordHasher()
        self.clock = clock
        self.cache_ttl = cache_ttl.total_seconds()
        self.cache_size = cache_size
        self._dummy_hash: str | None = None
        # token hash -> (user, session expiry, monotonic time it was read)
        self._cache: dict[str, tuple[SessionUser, datetime, float]] = {}
        self._cache_lock = threading.Lock()

    # sign-in -------------------------------------------------------------------------------
    def create_anonymous(self) -> Issued:
        return self._create(None, None, anonymous=True)

    def register(self, username: str, password: str) -> Issued:
        username = normalise_username(username)
        _check_password(password)
        if self._find(username) is not None:  # also an older row differing in ASCII case
            raise Conflict(f"the username {username!r} is taken")
        return self._create(username, self.hasher.hash(password), anonymous=False)

    def login(self, username: str, password: str) -> Issued:
        _check_password_text(password)
        row = self._find(normalise_username(username))
        stored = None if row is None else row["password_hash"]
        if not self._verify(stored, password) or row is None:
            raise Unauthorized("wrong username or password")
        return self._issue(_user(row))

    def _find(self, username: str) -> Any:
        """The row of a normalised name (by the unique index); failing that, a row from before
        names were normalised that differs in ASCII case (a scan, paid only on a miss, which
        also costs a password hash)."""
        exact = select(_users).where(_users.c.username == username)
        older = (
            select(_users)
            .where(func.lower(_users.c.username) == username, _users.c.username != username)
            .order_by(_users.c.id)
            .limit(1)
        )

        def find(conn: Any) -> Any:
            return conn.execute(exact).mappings().first() or conn.execute(older).mappings().first()

        return self._read(find)

    def logout(self, token: str) -> None:
        token_hash = hash_token(token)
        with self._cache_lock:
            self._cache.pop(token_hash, None)
        self._write(
            lambda conn: conn.execute(delete(_sessions).where(_sessions.c.token_hash == token_hash))
        )

    # lookups -------------------------------------------------------------------------------
    def authenticate(self, token: str) -> SessionUser:
        """The user of a live session, or :class:`Unauthorized`."""
        token_hash = hash_token(token)
        now = time.monotonic()
        with self._cache_lock:
            cached = self._cache.get(token_hash)
        if cached is None or now - cached[2] > self.cache_ttl:
            cached = self._lookup(token_hash, now)
        user, expires_at, _ = cached
        if expires_at <= self.clock():
            raise Unauthorized("the session has expired: sign in again")
        return user

    def _lookup(self, token_hash: str, now: float) -> tuple[SessionUser, datetime, float]:
        query = (
            select(_users, _sessions.c.expires_at)
            .join(_sessions, _sessions.c.user_id == _users.c.id)
            .where(_sessions.c.token_hash == token_hash)
        )
        row = self._read(lambda conn: conn.execute(query).mappings().first())
        with self._cache_lock:
            if row is None:
                self._cache.pop(token_hash, None)
                raise Unauthorized("invalid session token: sign in again")
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            entry = (_user(row), row["expires_at"], now)
            if self.cache_ttl > 0:
                self._cache[token_hash] = entry
        return entry

    # internals -----------------------------------------------------------------------------
    def _create(self, username: str | None, password_hash: str | None, anonymous: bool) -> Issued:
        now = self.clock()
        values = {
            "username": username,
            "password_hash": password_hash,
            "anonymous": anonymous,
            "created_at": now,
        }
        try:
            with write_tx(self.engine) as conn:
                user_id = conn.execute(
                    _users.insert().values(values).returning(_users.c.id)
                ).scalar_one()
                return self._issue_in(conn, SessionUser(user_id, username, anonymous, now))
        except IntegrityError:
            raise Conflict(f"the username {username!r} is taken") from None
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not create a user: {e}") from e

    def _issue(self, user: SessionUser) -> Issued:
        try:
            with write_tx(self.engine) as conn:
                return self._issue_in(conn, user)
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not start a session: {e}") from e

    def _issue_in(self, conn: Any, user: SessionUser) -> Issued:
        now = self.clock()
        token = secrets.token_urlsafe(32)
        expires = now + self.session_ttl
        conn.execute(delete(_sessions).where(_sessions.c.expires_at <= now))
        conn.execute(
            _sessions.insert().values(
                token_hash=hash_token(token), user_id=user.id, created_at=now, expires_at=expires
            )
        )
        return Issued(token, user, expires, self.session_ttl)

    def _verify(self, stored: str | None, password: str) -> bool:
        """Check a password; unknown users cost as much as known ones (no timing oracle)."""
        if stored is None:
            if self._dummy_hash is None:
                self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
            stored = self._dummy_hash
            password = password + "\x00unknown"
        try:
            return self.hasher.verify(stored, password) and stored is not self._dummy_hash
        except (VerificationError, InvalidHashError):
            return False

    def _read(self, fn: Callable[[Any], Any]) -> Any:
        try:
            with self.engine.connect() as conn:
                return fn(conn)
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not read users: {e}") from e

    def _write(self, fn: Callable[[Any], Any]) -> Any:
        try:
            with write_tx(self.engine) as conn:
                return fn(conn)
        except SQLAlchemyError as e:
            raise DatabaseError(f"could not write users: {e}") from e


def _user(row: Any) -> SessionUser:
    return SessionUser(row["id"], row["username"], bool(row["anonymous"]), row["created_at"])


def normalise_username(username: str) -> str:
    """The one form a username is stored and looked up in: NFKC, case-folded, stripped."""
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in username):
        raise BadRequest("a username cannot hold control characters or lone surrogates")
    username = unicodedata.normalize("NFKC", username).casefold().strip()
    if not 0 < len(username) <= 150:
        raise BadRequest("a username has 1 to 150 characters")
    return username


def _check_password(password: str) -> None:
    if not 6 <= len(password) <= 256:
        raise BadRequest("a password has 6 to 256 characters")
    _check_password_text(password)


def _check_password_text(password: str) -> None:
    """A password is hashed as UTF-8: a lone surrogate cannot be (NUL can)."""
    if jsonsafe.problem(password.replace("\x00", "")) is not None:
        raise BadRequest("a password cannot hold lone surrogates (not valid Unicode text)")
