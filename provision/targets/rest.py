"""What the targets' own REST calls share (GCP's service-account keys, Microsoft Graph's
application passwords): reading a response body that may not be the JSON object it should."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's body as a JSON object; ``{}`` when it is empty, not JSON, or not an
    object (a proxy's HTML error page, a bare list), so error formatting never raises."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
