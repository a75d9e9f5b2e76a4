"""Push pools whose whole provisioning is a credentials block holding a token this machine has.

Modal and Coiled work this way: Prefect Cloud submits each flow run to the service with the
token in the pool's block, and there is nothing to create in a cloud. The token is the one the
service's own CLI uses here (``local_tokens``), read only by ``up`` and ``preview``: listing,
showing or destroying the pool needs none, so any machine sharing the backend can do those.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from provision.errors import InvalidInputError
from provision.registry import PoolType
from provision.targets.base import (
    NextSteps,
    OptionPicker,
    Outputs,
    Pool,
    TargetOptions,
    block_ref,
)


class NoOptions(TargetOptions):
    """A target with no options: the token decides the account its runs go to."""


@dataclass(frozen=True)
class TokenPushPool(Pool[NoOptions]):
    """A push pool made of its block and the work pool referencing it."""

    options_model = NoOptions
    product: ClassVar[str]
    """The service's name, for messages and ``list``: ``Modal``."""
    template_key: ClassVar[str]
    """The template variable that references the block (``modal_credentials``)."""
    login_hint: ClassVar[str]
    """How to get a token on this machine: ``run `modal token new` (or set ...)``."""

    @classmethod
    def resolve_options(
        cls,
        name: str,
        pool_type: PoolType,
        given: Mapping[str, Any],
        env: Mapping[str, str],
        saved: NoOptions | None,
    ) -> NoOptions:
        """Nothing to choose; a flag of another target is refused with one line."""
        OptionPicker(pool_type, given, saved, NoOptions.keys())
        return NoOptions()

    @abc.abstractmethod
    def token_data(self, schema: Mapping[str, Any]) -> dict[str, str]:
        """The block document from this machine's token, with the fields ``schema`` (the block
        type's on the server) holds it in. Raises :meth:`missing_token` when there is none."""

    def check_local(self, schema: Mapping[str, Any]) -> None:
        """This machine has a token, and the server's block type has fields for it."""
        self.token_data(schema)

    def block_data(self, outputs: Outputs, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The token, read when the block is written (never kept in the pool's options)."""
        return self.token_data(schema)

    def template_defaults(self, outputs: Outputs, block_document_id: str | None) -> dict[str, Any]:
        """The block, under the variable Prefect's own provisioner for the service sets."""
        return {self.template_key: block_ref(block_document_id)}

    def next_steps(self, outputs: Outputs) -> NextSteps:
        """Deploy from source: the service builds the run's environment, no registry needed."""
        return NextSteps(deploy_snippet=deploy_from_source(self.name))

    def location(self) -> str:
        """No region to show: the token's account runs the flows."""
        return self.product

    def missing_token(self) -> InvalidInputError:
        """The one-line error for a machine without a token."""
        return InvalidInputError(
            f"No {self.product} token on this machine: {self.login_hint}, then rerun."
        )


def deploy_from_source(pool: str) -> str:
    """How to deploy a flow to a pool whose runs fetch the code themselves."""
    return (
        'my_flow.from_source("https://github.com/<you>/<repo>", entrypoint="flows.py:my_flow")'
        f'.deploy(name="my-deployment", work_pool_name={json.dumps(pool)})'
    )
