"""The Docker files, checked without a Docker engine: lint, structure, same install as CI, the
compose file against the Compose Specification (the images themselves are built and run in
tests/e2e/test_container_images.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO
from tests.support.compose import COMPOSE, built_images, load_compose

ROOT = REPO
HADOLINT = Path(sys.executable).parent / "hadolint"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def test_dockerfiles_pass_hadolint_and_install_like_ci() -> None:
    files = [ROOT / "docker" / "Dockerfile", ROOT / "docker" / "Dockerfile.gpu"]
    done = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "info", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    assert "bash scripts/install dev" in bootstrap  # CI's install step
    for file, extras in zip(files, ("ocr,video", "models,ocr,video"), strict=True):
        text = file.read_text()
        installs = re.findall(r"bash scripts/install (\S+)", text)
        assert installs == [extras], (file, installs)
        assert "pip install" not in text  # nothing installed any other way
        copied = set(re.findall(r"^COPY (\S+)/ ", text, re.M))
        assert copied >= {"prelabel", "prelabel_cli", "flows", "tasks", "scripts", "deployments"}


def test_compose_stack_is_complete_and_guarded() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "prefect-server",
        "label-studio",
        "minio",
        "setup",
        "cpu-worker",
        "gpu-worker",
        "ml-backend",
    }
    for name, service in services.items():
        if name != "setup":
            assert "healthcheck" in service, name
            assert service.get("restart") == "unless-stopped", name
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert services["prefect-server"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        "postgresql+asyncpg"
        in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    assert services["cpu-worker"]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert set(compose["volumes"]) >= {"postgres-data", "label-studio-data", "minio-data", "prelabel-data"}
    backend = services["ml-backend"]
    assert backend["command"][:2] == ["prelabel", "serve"] and "--host=0.0.0.0" in backend["command"]
    assert backend["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"  # hand-overs
    assert backend["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    # Label Studio reaches the backend (and its webhook) on the compose network's private addresses
    assert services["label-studio"]["environment"]["ML_BLOCK_LOCAL_IP"] == "false"
    assert services["label-studio"]["environment"]["SSRF_PROTECTION_ENABLED"] == "false"
    text = (ROOT / "docker" / "compose.yaml").read_text()
    for secret in (
        "POSTGRES_PASSWORD",
        "PRELABEL_LS_API_KEY",
        "MINIO_ROOT_PASSWORD",
        "LABEL_STUDIO_PASSWORD",
        "PRELABEL_SERVE_WEBHOOK_SECRET",
    ):
        assert f"${{{secret}:?" in text, f"{secret} must come from docker/.env, never a default"


@pytest.mark.parametrize(
    ("edit", "valid"),
    [
        ((), True),  # the file as shipped
        (("healthcheck:", "healthchek:"), False),  # a misspelt key: the schema is really applied
        (('ports: ["127.0.0.1:4200:4200"]', "ports: 4200"), False),  # a wrong type
    ],
)
def test_compose_file_follows_the_compose_specification(
    tmp_path: Path, edit: tuple[str, ...], valid: bool
) -> None:
    text = COMPOSE.read_text()
    if edit:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1], 1)
    copy = tmp_path / "compose.yaml"
    copy.write_text(text)
    command = [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(copy)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert (done.returncode == 0) == valid, done.stdout + done.stderr


def test_compose_builds_our_images_and_pins_the_others() -> None:
    # What compose builds is what the container tier builds and runs.
    assert built_images() == {
        "prelabel-cpu:latest": "docker/Dockerfile",
        "prelabel-gpu:latest": "docker/Dockerfile.gpu",
    }
    for name, service in load_compose()["services"].items():
        image = service["image"]
        if image.startswith("prelabel-"):
            assert image in built_images(), name
        else:  # pulled: a release, never whatever :latest is that day
            assert ":" in image and not image.endswith(":latest"), (name, image)


def test_compose_publishes_ports_on_loopback_only() -> None:
    published = 0
    for name, service in load_compose()["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)
            published += 1
    assert published == 4  # Prefect, Label Studio, MinIO's API and console


SECRET_NAME = re.compile(r"(PASSWORD|SECRET_ACCESS_KEY|API_KEY|TOKEN)$")
FROM_ENVIRONMENT = re.compile(r"\$\{[A-Z][A-Z0-9_]*(?::\?[^}]*|:-)?\}")
"""A variable of the environment (docker/.env): required (``:?``), or empty when unset (``:-``)."""


def test_compose_takes_every_secret_from_the_environment() -> None:
    for name, service in load_compose()["services"].items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), name
        for key, value in environment.items():
            switch = str(value) in {"true", "false"}  # LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN: "true"
            if SECRET_NAME.search(key) and not switch:
                assert FROM_ENVIRONMENT.fullmatch(str(value)), (name, key, value)
            for password in re.findall(r"://[^:/@]+:([^@]+)@", str(value)):  # in a URL
                assert FROM_ENVIRONMENT.fullmatch(password), (name, key)


def test_deployments_file_names_every_flow_and_pool() -> None:
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert set(by_name) == {
        "preannotate",
        "infer-shard",
        "export",
        "export-shard",
        "features",
        "post-predictions",
        "pull-annotations",
        "quality",
    }
    gpu = {"infer-shard", "export-shard", "features"}
    assert {by_name[n]["work_pool"]["name"] for n in gpu} == {"prelabel-gpu"}
    assert {by_name[n]["work_pool"]["name"] for n in by_name if n not in gpu} == {"prelabel-cpu"}
    for deployment in by_name.values():
        module, _, function = deployment["entrypoint"].partition(":")
        assert f"def {function}(" in (ROOT / module).read_text()
    assert by_name["pull-annotations"]["schedules"][0]["interval"] == 3600


@pytest.mark.parametrize(
    ("pull", "connection"),
    [
        # a pull on the environment's Label Studio with its key: the quality run takes the same
        ({"project_id": 3, "output_dir": "/exports/p3"}, {"ls_url": None, "api_key_block": None}),
        # a pull on another server with a stored key: the quality run reads the same project there
        (
            {
                "project_id": 3,
                "output_dir": "/exports/p3",
                "ls_url": "http://ls-b",
                "api_key_block": "ls-b-key",
            },
            {"ls_url": "http://ls-b", "api_key_block": "ls-b-key"},
        ),
    ],
)
def test_the_quality_trigger_passes_on_the_pulls_project_and_connection(
    pull: dict[str, Any], connection: dict[str, Any]
) -> None:
    """The trigger's parameters rendered as Prefect's server renders them for a completed pull run."""
    from prefect.server.events.actions import RunDeployment
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    from flows.params import QualityParams

    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    (trigger,) = next(d for d in spec["deployments"] if d["name"] == "quality")["triggers"]
    parameters = trigger["parameters"]
    RunDeployment._upgrade_v1_templates(parameters)  # what the server does before rendering
    context = HydrationContext(
        render_jinja=True, raise_on_error=True, jinja_context={"flow_run": {"parameters": {"params": pull}}}
    )
    rendered = hydrate(parameters, context)
    assert rendered == {"params": {"project_id": 3, "output_dir": "/exports/p3/quality", **connection}}
    assert QualityParams.model_validate(rendered["params"]).project_id == 3
