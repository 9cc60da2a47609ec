"""docker-compose.yml and the Dockerfile, checked at the level of what they reference.

There is no Docker engine on the machines that run this suite: these tests hold every name
the files use (commands, settings, mounted paths, services, health-check ports) to what
firehook and the repository really have.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from firehook.cli import app as cli_app
from firehook.config.envcheck import unknown_variables

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
FIREHOOK = {n: s for n, s in SERVICES.items() if s.get("image") == "firehook:local"}


def commands() -> set[str]:
    import typer.main

    group = typer.main.get_command(cli_app)
    return set(getattr(group, "commands", {}))


def test_every_role_of_firehook_has_a_service_and_a_real_command() -> None:
    known = commands()
    roles = {}
    for name, service in FIREHOOK.items():
        command = service["command"]
        assert command[0] == "firehook", name
        sub = next(w for w in command[1:] if not w.startswith("-") and w != "info")
        assert sub in known, f"{name}: firehook has no command {sub!r}"
        roles[sub] = name
    assert {"api", "worker", "consumer", "scheduler", "apply"} <= set(roles)


def test_every_firehook_variable_is_a_real_setting() -> None:
    for name, service in FIREHOOK.items():
        assert unknown_variables(service["environment"]) == [], name
    dockerfile = (ROOT / "Dockerfile").read_text()
    in_image = dict.fromkeys(re.findall(r"\b(FIREHOOK_[A-Z_]+)=", dockerfile), "")
    assert in_image and unknown_variables(in_image) == []


def test_the_image_makes_every_listener_reachable_in_a_container() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FIREHOOK_HTTP__HOST=0.0.0.0" in dockerfile
    assert "FIREHOOK_METRICS__HOST=0.0.0.0" in dockerfile


def test_mounted_files_exist_and_the_config_file_is_applied_before_the_roles() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    apply = FIREHOOK["apply"]
    assert apply["restart"] == "no"
    config = apply["command"][-1]
    assert any(v.split(":")[1] == config for v in apply["volumes"])
    for name, service in FIREHOOK.items():
        if name == "apply":
            continue
        assert service["depends_on"]["apply"] == {"condition": "service_completed_successfully"}


def test_the_config_file_compose_applies_is_the_one_init_writes_and_it_applies(
    tmp_path: Path,
) -> None:
    from firehook.config.loader import load_config
    from firehook.templates import CONFIG

    assert (ROOT / "firehook.yaml").read_text(encoding="utf-8") == CONFIG
    load_config(ROOT / "firehook.yaml")  # raises on any mistake


@pytest.mark.parametrize("name", sorted(set(FIREHOOK) - {"apply"}))
def test_every_long_running_role_has_a_health_check_on_its_own_port(name: str) -> None:
    service = FIREHOOK[name]
    check = service.get("healthcheck", {})
    assert not check.get("disable"), name
    probe = " ".join(check["test"])
    port = int(re.search(r"127\.0\.0\.1:(\d+)/", probe).group(1))  # type: ignore[union-attr]
    env = service["environment"]
    expected = int(env.get("FIREHOOK_HTTP__PORT", 8000)) if name == "api" else None
    if expected is None:
        expected = int(env["FIREHOOK_METRICS__PORT"])
    assert port == expected, f"{name} listens on {expected}, its health check asks {port}"
    for dependency in service["depends_on"]:
        assert dependency in SERVICES
