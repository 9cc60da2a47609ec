"""The HTTP API: MinCloud-compatible invoke and sign-in, and firehook's own ``/v1/`` API."""

from firehook.api.factory import create_api
from firehook.api.role import ApiRole, ApiStartError

__all__ = ["ApiRole", "ApiStartError", "create_api"]
