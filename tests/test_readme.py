"""The README's comparison with Prefect states what the installed Prefect's source does."""

from __future__ import annotations

import importlib.util
from importlib.metadata import version
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _provisioner(name: str) -> str:
    spec = importlib.util.find_spec("prefect")  # locates it without importing it
    assert spec is not None and spec.origin
    return (Path(spec.origin).parent / "infrastructure" / "provisioners" / name).read_text()


def test_rerun_row_is_read_from_the_installed_prefect():
    readme = README.read_text()
    # Re-read the provisioners and update the README when the test extra pins another Prefect.
    assert f"Prefect {version('prefect')}'s" in readme
    row = next(line for line in readme.splitlines() if line.startswith("| Re-run |"))
    assert "Cloud Run: a **new service-account key** every run" in row
    assert "ECS: reuses the existing" in row and "ACI: reuses the existing" in row

    cloud_run = _provisioner("cloud_run.py")
    provision = cloud_run[cloud_run.index("async def provision(") :]
    # The key is made unconditionally, then an existing block is returned instead.
    assert provision.index("_create_service_account_key()") < provision.index(
        "_create_gcp_credentials_block("
    )
    assert "except ObjectAlreadyExists:" in cloud_run

    ecs = _provisioner("ecs.py")
    credentials = ecs[ecs.index("class CredentialsBlockResource") :]
    assert credentials.index("if not await self.requires_provisioning():") < credentials.index(
        "create_access_key"
    )

    aci = _provisioner("container_instance.py")
    provision = aci[aci.index("async def provision(") :]
    assert provision.index("if not credentials_block_exists:") < provision.index(
        "_generate_secret_for_app("
    )
