"""Coiled: ``coiled:push`` pools (Prefect Cloud). No cloud resources: a credentials block only.

Prefect Cloud submits each flow run to Coiled with the API token in the pool's
``coiled-credentials`` block. The token is the one the ``coiled`` CLI uses on this machine
(``DASK_COILED__TOKEN``, else ``coiled.token`` in the dask config that ``coiled login`` writes),
read without importing ``coiled`` or ``dask`` (see ``local_tokens``). Which block field holds it
is the server's to say: the block type's schema on the server is read, not assumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provision.errors import InvalidInputError
from provision.registry import PoolType
from provision.targets.base import (
    BlockSpec,
    NextSteps,
    OptionPicker,
    Outputs,
    Pool,
    TargetOptions,
    block_ref,
)
from provision.targets.local_tokens import CoiledToken, coiled_token
from provision.targets.modal import deploy_from_source


class CoiledOptions(TargetOptions):
    """A Coiled pool has no options: the token decides the Coiled account."""


@dataclass(frozen=True)
class CoiledPool(Pool[CoiledOptions]):
    """A Coiled push pool: the ``coiled-credentials`` block and the work pool referencing it."""

    cloud = "coiled"
    options_model = CoiledOptions
    block = BlockSpec("coiled-credentials", "coiled-credentials")

    @classmethod
    def resolve_options(
        cls,
        name: str,
        pool_type: PoolType,
        given: Mapping[str, Any],
        env: Mapping[str, str],
        saved: CoiledOptions | None,
    ) -> CoiledOptions:
        """Nothing to choose; a flag of another target is refused with one line."""
        OptionPicker(pool_type, given, saved, CoiledOptions.keys())
        return CoiledOptions()

    def check_local(self, schema: Mapping[str, Any]) -> None:
        """This machine has a Coiled token, and the server's block type has a field for it."""
        self._token()
        token_field(schema)

    def block_data(self, outputs: Outputs, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The token under the block type's one secret field (``api_token`` in prefect-coiled)."""
        return {token_field(schema): self._token().token}

    def template_defaults(self, outputs: Outputs, block_document_id: str | None) -> dict[str, Any]:
        """``credentials``: the block, as Prefect's own Coiled provisioner sets it."""
        return {"credentials": block_ref(block_document_id)}

    def next_steps(self, outputs: Outputs) -> NextSteps:
        """Deploy from source: Coiled builds the run's software environment."""
        return NextSteps(deploy_snippet=deploy_from_source(self.name))

    def location(self) -> str:
        """Coiled has no region to show here: the account's default decides."""
        return "Coiled"

    def _token(self) -> CoiledToken:
        token = coiled_token(self.env)
        if token is None:
            raise InvalidInputError(
                "No Coiled token on this machine: run `coiled login` (or set "
                "DASK_COILED__TOKEN), then rerun."
            )
        return token


def token_field(schema: Mapping[str, Any]) -> str:
    """The block field that holds the token: the schema's only secret field.

    ``coiled-credentials`` declares exactly one (prefect-coiled's ``CoiledCredentials.api_token``
    is a ``SecretStr``); a schema with none or several is one we do not know how to fill.
    """
    secret = [f for f in schema.get("secret_fields") or () if "." not in f]
    properties = schema.get("properties") or {}
    fields = [f for f in secret if f in properties]
    if len(fields) != 1:
        raise InvalidInputError(
            "The server's 'coiled-credentials' block type declares secret fields "
            f"{sorted(secret) or 'none'}: cannot tell which holds the Coiled token; upgrade "
            "provision or report this."
        )
    return fields[0]
