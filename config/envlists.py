"""List settings from environment variables: ``a,b`` as well as the JSON ``["a", "b"]``.

pydantic-settings decodes a list field's variable as JSON and fails with a traceback on a
plain value (``FIREHOOK_HTTP__CORS_ORIGINS=https://shop.example``).  Fields typed
:data:`CommaList` (or annotated with :func:`comma_list` and ``NoDecode``) get the raw text and
split it here; values from the config file or from JSON pass through unchanged.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

__all__ = ["CommaList", "comma_list"]


def comma_list(value: Any) -> Any:
    """``"a, b"`` -> ``["a", "b"]``; ``'["a"]'`` -> ``["a"]``; ``""`` -> ``[]``; else as is."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as e:
            raise ValueError(f"not a JSON list ({e}); or write the items comma-separated") from None
    return [item.strip() for item in text.split(",") if item.strip()]


CommaList = Annotated[list[str], NoDecode, BeforeValidator(comma_list)]
"""A list of strings that an environment variable gives as ``a,b`` or ``["a", "b"]``."""
