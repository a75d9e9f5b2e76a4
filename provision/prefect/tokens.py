"""The Prefect resources' type tokens and the keys of what the service hands their provider.

Apart from ``resources`` (which defines the resources, and so loads the pulumi SDK) so that the
service, the saved-state readers and the offline plan can name them without loading it.
"""

ENV_URL = "PROVISION_PREFECT_API_URL"
ENV_KEY = "PROVISION_PREFECT_API_KEY"
ENV_AUTH = "PROVISION_PREFECT_AUTH_STRING"
ENV_FACTS = "PROVISION_PREFECT_FACTS"
"""What the service's checks read of the server (``ServerFacts.to_json``): the block type, its
schema, the default template. The provider starts from them instead of reading them again."""
ENV_OWNED = "PROVISION_PREFECT_OWNED"
"""Comma-separated ids a pool's earlier record says the tool created (used once, when a pool
made before the Prefect side joined the stack is migrated: its objects are adopted as ours)."""

BLOCK_TYPE = "pulumi-python:dynamic/prefect:Block"
WORK_POOL_TYPE = "pulumi-python:dynamic/prefect:WorkPool"
TYPES = (BLOCK_TYPE, WORK_POOL_TYPE)
