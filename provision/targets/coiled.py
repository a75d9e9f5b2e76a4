"""Coiled: ``coiled:push`` pools (Prefect Cloud). No cloud resources: a credentials block only.

The token is the one the ``coiled`` CLI uses on this machine (``DASK_COILED__TOKEN``, else
``coiled.token`` in the dask config that ``coiled login`` writes), read without importing
``coiled`` or ``dask`` (see ``local_tokens``). Which block field holds it is the server's to
say: the block type's schema on the server is read, not assumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provision.errors import InvalidInputError
from provision.targets.base import BlockSpec
from provision.targets.local_tokens import coiled_token
from provision.targets.token_push import TokenPushPool


@dataclass(frozen=True)
class CoiledPool(TokenPushPool):
    """A Coiled push pool: the ``coiled-credentials`` block and the work pool referencing it."""

    cloud = "coiled"
    product = "Coiled"
    block = BlockSpec("coiled-credentials", "coiled-credentials")
    template_key = "credentials"
    login_hint = "run `coiled login` (or set DASK_COILED__TOKEN)"

    def token_data(self, schema: Mapping[str, Any]) -> dict[str, str]:
        """The token under the block type's one secret field (``api_token`` in prefect-coiled)."""
        token = coiled_token(self.env)
        if token is None:
            raise self.missing_token()
        return {token_field(schema): token.token}


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
