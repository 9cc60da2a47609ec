"""How the CLI prints invocation records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from firehook.invoker.records import Invocation

__all__ = ["record_dict", "record_json", "record_text", "table"]


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def record_dict(row: Invocation, *, with_logs: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "root_id": row.root_id,
        "function": row.function,
        "status": row.status,
        "event_type": row.event_type,
        "source": row.source,
        "idempotency_key": row.idempotency_key,
        "attempt": row.attempt,
        "max_attempts": row.max_attempts,
        "params": row.params,
        "result": row.result,
        "error": row.error,
        "note": row.note,
        "caller_user_id": row.caller_user_id,
        "created_at": _iso(row.created_at),
        "due_at": _iso(row.due_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "duration_ms": row.duration_ms,
    }
    if with_logs:
        out["logs"] = row.logs
    return out


def record_json(row: Invocation) -> str:
    return json.dumps(record_dict(row), ensure_ascii=False, indent=2)


def _duration(row: Invocation) -> str:
    return "-" if row.duration_ms is None else f"{row.duration_ms:.1f} ms"


def record_text(row: Invocation) -> str:
    lines = [
        f"job       {row.id}",
        f"function  {row.function}",
        f"status    {row.status}",
        f"source    {row.event_type}{'' if row.source is None else ' ' + row.source}",
        f"attempt   {row.attempt} of {row.max_attempts}",
        f"created   {_iso(row.created_at)}",
        f"due       {_iso(row.due_at)}",
        f"started   {_iso(row.started_at) or '-'}",
        f"finished  {_iso(row.finished_at) or '-'}",
        f"duration  {_duration(row)}",
        f"params    {json.dumps(row.params, ensure_ascii=False)}",
    ]
    if row.note:
        lines.append(f"note      {row.note}")
    if row.error:
        lines.append(f"error     {row.error.get('type')}: {row.error.get('message')}")
        if row.error.get("stack"):
            lines.append(row.error["stack"].rstrip())
    elif row.status == "fulfilled":
        lines.append(f"result    {json.dumps(row.result, ensure_ascii=False)}")
    lines.append("--- output ---")
    lines.append((row.logs or "(none)").rstrip())
    return "\n".join(lines)


def table(rows: Sequence[Invocation]) -> str:
    if not rows:
        return "no runs on record"
    row = "{:<32}  {:<20}  {:<18}  {:<8}  {:<19}  {}"
    lines = [row.format("ID", "FUNCTION", "STATUS", "SOURCE", "CREATED (UTC)", "DURATION")]
    for r in rows:
        created = r.created_at.strftime("%Y-%m-%d %H:%M:%S")
        lines.append(row.format(r.id, r.function, r.status, r.event_type, created, _duration(r)))
    return "\n".join(lines)
