"""The targets' shared reading of REST response bodies."""

from __future__ import annotations

import httpx
import pytest

from provision.targets.rest import json_object


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"error": {"code": 403}}', {"error": {"code": 403}}),
        (b"", {}),
        (b"<html>502 Bad Gateway</html>", {}),  # a proxy's page, not the API's
        (b'[{"name": "k1"}]', {}),
        (b"null", {}),
    ],
    ids=["object", "empty", "html", "list", "null"],
)
def test_a_body_is_an_object_or_empty(content, expected):
    assert json_object(httpx.Response(502, content=content)) == expected
