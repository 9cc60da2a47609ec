"""Request bodies: read as bytes and parsed with the limits every input path shares.

FastAPI's own body parsing (``await request.json()``) has no depth limit and lets a
5,000-digit number or ``NaN`` through to ``Any`` fields; every route that takes data (the
invoke routes, events, webhooks) parses here instead (:func:`firehook.invoker.jsonsafe.loads`:
nesting, finite numbers, digits, NUL, lone surrogates), so a poison body is a 400 with the
reason and never reaches the pool or the store.  Routes with small typed bodies (sign-in,
cancel, replay) keep FastAPI's parsing, which answers 400 on a body it cannot decode; their
text fields are checked where they are used.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from firehook.api.errors import BadRequest
from firehook.invoker import jsonsafe

__all__ = ["NOT_JSON", "json_body", "model_body", "parse_json"]

NOT_JSON = "the request body is not valid JSON"

M = TypeVar("M", bound=BaseModel)


def parse_json(raw: bytes) -> Any:
    """The body's JSON value, or :class:`BadRequest` naming the limit it breaks."""
    try:
        return jsonsafe.loads(raw)
    except ValueError as e:
        reason = str(e)
        if reason.startswith(("not JSON", "not UTF-8")):
            raise BadRequest(f"{NOT_JSON}: {reason.removeprefix('not JSON: ')}") from None
        raise BadRequest(f"the request body is refused: {reason}") from None


async def json_body(request: Request) -> Any:
    return parse_json(await request.body())


def model_body(model: type[M], value: Any) -> M:
    """``value`` validated as ``model``; :class:`BadRequest` lists what is wrong."""
    try:
        return model.model_validate(value)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors()
        )
        raise BadRequest(problems or "invalid request") from None
