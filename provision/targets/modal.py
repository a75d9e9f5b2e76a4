"""Modal: ``modal:push`` pools (Prefect Cloud). No cloud resources: a credentials block only.

Prefect Cloud submits each flow run to Modal with the token in the pool's ``modal-credentials``
block. The token is the one the ``modal`` CLI uses on this machine (``MODAL_TOKEN_ID`` and
``MODAL_TOKEN_SECRET``, else the active profile of ``~/.modal.toml``), read without importing
``modal`` (see ``local_tokens``). It is read only by ``up`` and ``preview``: listing, showing
or destroying the pool needs no token, so any machine sharing the backend can do those.
"""

from __future__ import annotations

import json
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
    require_block_fields,
)
from provision.targets.local_tokens import ModalToken, modal_token


class ModalOptions(TargetOptions):
    """A Modal pool has no options: the token decides the Modal workspace."""


@dataclass(frozen=True)
class ModalPool(Pool[ModalOptions]):
    """A Modal push pool: the ``modal-credentials`` block and the work pool referencing it."""

    cloud = "modal"
    options_model = ModalOptions
    block = BlockSpec("modal-credentials", "modal-credentials")

    @classmethod
    def resolve_options(
        cls,
        name: str,
        pool_type: PoolType,
        given: Mapping[str, Any],
        env: Mapping[str, str],
        saved: ModalOptions | None,
    ) -> ModalOptions:
        """Nothing to choose; a flag of another target is refused with one line."""
        OptionPicker(pool_type, given, saved, ModalOptions.keys())
        return ModalOptions()

    def check_local(self, schema: Mapping[str, Any]) -> None:
        """This machine has a Modal token, and the server's block type takes its two fields."""
        self._token()
        require_block_fields(self.block, schema, ("token_id", "token_secret"))

    def block_data(self, outputs: Outputs, schema: Mapping[str, Any]) -> dict[str, Any]:
        """``{token_id, token_secret}``: the fields of Modal's block type."""
        token = self._token()
        return {"token_id": token.token_id, "token_secret": token.token_secret}

    def template_defaults(self, outputs: Outputs, block_document_id: str | None) -> dict[str, Any]:
        """``modal_credentials``: the block, as Prefect's own Modal provisioner sets it."""
        return {"modal_credentials": block_ref(block_document_id)}

    def next_steps(self, outputs: Outputs) -> NextSteps:
        """Deploy from source: Modal builds the run's environment, no registry involved."""
        return NextSteps(deploy_snippet=deploy_from_source(self.name))

    def location(self) -> str:
        """Modal has no region to show: the token's workspace runs the flows."""
        return "Modal"

    def _token(self) -> ModalToken:
        token = modal_token(self.env)
        if token is None:
            raise InvalidInputError(
                "No Modal token on this machine: run `modal token new` (or set MODAL_TOKEN_ID "
                "and MODAL_TOKEN_SECRET), then rerun."
            )
        return token


def deploy_from_source(pool: str) -> str:
    """How to deploy a flow to a pool whose runs fetch the code themselves."""
    return (
        'my_flow.from_source("https://github.com/<you>/<repo>", entrypoint="flows.py:my_flow")'
        f'.deploy(name="my-deployment", work_pool_name={json.dumps(pool)})'
    )
