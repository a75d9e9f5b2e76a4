"""Modal: ``modal:push`` pools (Prefect Cloud). No cloud resources: a credentials block only.

The token is the one the ``modal`` CLI uses on this machine (``MODAL_TOKEN_ID`` and
``MODAL_TOKEN_SECRET``, else the active profile of ``~/.modal.toml``), read without importing
``modal`` (see ``local_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provision.targets.base import BlockSpec, require_block_fields
from provision.targets.local_tokens import modal_token
from provision.targets.token_push import TokenPushPool


@dataclass(frozen=True)
class ModalPool(TokenPushPool):
    """A Modal push pool: the ``modal-credentials`` block and the work pool referencing it."""

    cloud = "modal"
    product = "Modal"
    block = BlockSpec("modal-credentials", "modal-credentials")
    template_key = "modal_credentials"
    login_hint = "run `modal token new` (or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET)"

    def token_data(self, schema: Mapping[str, Any]) -> dict[str, str]:
        """``{token_id, token_secret}``: the fields of Modal's block type."""
        token = modal_token(self.env)
        if token is None:
            raise self.missing_token()
        require_block_fields(self.block, schema, ("token_id", "token_secret"))
        return {"token_id": token.token_id, "token_secret": token.token_secret}
