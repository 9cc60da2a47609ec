"""firehook: the composition root (CLI, daemon) and the SDK that function authors import.

``from firehook import invoke`` runs or queues a function from an application or from
inside another function.
"""

from typing import Any


def invoke(name: str, params: Any = None, sync: bool = True, **kwargs: Any) -> dict[str, Any]:
    """See :func:`firehook.sdk.invoke`."""
    from firehook.sdk import invoke as _invoke  # late: importing firehook stays cheap

    return _invoke(name, params, sync, **kwargs)


def version() -> str:
    """The installed distribution's version ("0" when run from a bare source tree)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _version

    try:
        return _version("firehook")
    except PackageNotFoundError:
        return "0"


__all__ = ["invoke", "version"]
