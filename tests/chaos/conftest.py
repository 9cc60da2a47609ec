"""Fixtures of the crash tests: the real PostgreSQL and RabbitMQ, a rig to run roles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.rig import Rig
from tests.roles import rabbit_vhost


@pytest.fixture
def rig(postgres_url: str, functions_dir: Path, tmp_path: Path) -> Iterator[Rig]:
    with rabbit_vhost() as broker:
        r = Rig(postgres_url, functions_dir, tmp_path, broker)
        try:
            yield r
        finally:
            r.close()
