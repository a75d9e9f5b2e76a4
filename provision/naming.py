"""Pool names: what every command accepts, checked before anything else (no heavy import)."""

from __future__ import annotations

import re

from provision.errors import InvalidInputError

POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
"""A pool's name is its stack's name and a Prefect work pool name, and seeds cloud names."""


def validate_pool_name(pool: str) -> None:
    """Pool names become stack names and seed cloud resource names."""
    if not POOL_NAME.match(pool or ""):
        raise InvalidInputError(
            f"Invalid pool name '{pool}': use 1-63 letters, digits, '-' or '_', starting with a "
            "letter or digit."
        )
    if pool.lower().startswith("prefect"):
        raise InvalidInputError(
            f"Invalid pool name '{pool}': Prefect reserves names starting with 'prefect'."
        )
