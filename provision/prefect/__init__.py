"""The Prefect side: which API to use, a small REST client, and the block/work-pool writer.

Talks to Prefect over HTTP only; ``prefect`` itself is never imported.
"""

from provision.prefect.client import PrefectClient, PrefectHttpError
from provision.prefect.config import PrefectApi, resolve_api
from provision.prefect.writer import Op, PrefectWriter, WriteResult

__all__ = [
    "Op",
    "PrefectApi",
    "PrefectClient",
    "PrefectHttpError",
    "PrefectWriter",
    "WriteResult",
    "resolve_api",
]
