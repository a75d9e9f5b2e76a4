"""Prefect-managed pools (``prefect:managed``, Prefect Cloud): no cloud resources, no block.

Prefect Cloud runs the flows on its own infrastructure, so the stack holds only the work pool:
created (or adopted) from the server's default template, with the packages to install and the
environment of the runs set as its defaults when given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationInfo, field_validator

from provision.registry import PoolType
from provision.targets.base import NextSteps, OptionPicker, Outputs, Pool, TargetOptions, origin
from provision.targets.token_push import deploy_from_source

# An environment variable name as POSIX shells take it.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ManagedOptions(TargetOptions):
    """Validated options of a managed pool; saved verbatim in the pool's record.

    Environment values are stored in the record and the work pool as given: they are for
    configuration, not secrets (use a Prefect ``Secret`` block for those).
    """

    pip_packages: tuple[str, ...] = ()
    env: dict[str, str] = {}

    @field_validator("pip_packages", mode="before")
    @classmethod
    def _packages(cls, value: Any, info: ValidationInfo) -> Any:
        packages = (value,) if isinstance(value, str) else tuple(value)
        for package in packages:
            if (
                not isinstance(package, str)
                or not package.strip()
                or package.startswith("-")
                or any(c.isspace() for c in package.strip())
            ):
                raise ValueError(
                    f"Invalid --pip-package {package!r}{origin(info)}: one requirement such as "
                    "pandas or 'pandas>=2.2', no pip options or spaces."
                )
        stripped = tuple(p.strip() for p in packages)
        # After stripping: " pandas" and "pandas" are saved as the same requirement.
        if len(set(stripped)) != len(stripped):
            raise ValueError(f"--pip-package{origin(info)} lists a package twice.")
        return stripped

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any, info: ValidationInfo) -> Any:
        items = (
            [f"{k}={v}" for k, v in value.items()]  # a record: checked like new input
            if isinstance(value, Mapping)
            else (value,)
            if isinstance(value, str)
            else value
        )
        pairs: dict[str, str] = {}
        for item in items:
            key, sep, val = str(item).partition("=")
            if not sep or not _ENV_NAME.match(key):
                raise ValueError(
                    f"Invalid --env {item!r}{origin(info)}: expected KEY=VALUE with KEY a "
                    "variable name (letters, digits, '_')."
                )
            if key in pairs:
                raise ValueError(f"--env{origin(info)} sets {key} twice.")
            pairs[key] = val
        return pairs


@dataclass(frozen=True)
class ManagedPool(Pool[ManagedOptions]):
    """A Prefect-managed pool: only the work pool, with the packages and environment given."""

    cloud = "prefect"
    options_model = ManagedOptions

    @classmethod
    def resolve_options(
        cls,
        name: str,
        pool_type: PoolType,
        given: Mapping[str, Any],
        env: Mapping[str, str],
        saved: ManagedOptions | None,
    ) -> ManagedOptions:
        """Flags, else the saved options. A flag given again replaces the saved list whole."""
        pick = OptionPicker(pool_type, given, saved, ManagedOptions.keys())
        values = {"pip_packages": pick("pip_packages", ()), "env": pick("env", {})}
        return ManagedOptions.checked(values, pick.sources)

    def template_defaults(self, outputs: Outputs, block_document_id: str | None) -> dict[str, Any]:
        """``pip_packages`` and ``env`` when given; the server's defaults stay otherwise, and
        so do edits made to them in the UI."""
        defaults: dict[str, Any] = {}
        if self.options.pip_packages:
            defaults["pip_packages"] = list(self.options.pip_packages)
        if self.options.env:
            defaults["env"] = dict(self.options.env)
        return defaults

    def next_steps(self, outputs: Outputs) -> NextSteps:
        """Deploy from source: Prefect's infrastructure pulls the code at run time."""
        return NextSteps(deploy_snippet=deploy_from_source(self.name))

    def location(self) -> str:
        """The runs happen on Prefect Cloud's own infrastructure."""
        return "Prefect Cloud"
