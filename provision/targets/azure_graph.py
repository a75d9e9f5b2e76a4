"""Microsoft Graph, for the one clean-up Pulumi cannot do: an app's untracked client secret.

A run killed while Entra ID adds a client secret can leave one the Pulumi state never heard
of: Graph made it, but the engine died before the answer came back. Its value was returned
once, to that engine, so the secret cannot be adopted into the state (the block could never
be filled from it); the rerun removes it instead. Graph generates a secret's ``keyId``, so
nothing in the state can name it: the app's ``passwordCredentials`` are listed and each of the
tool's own (by display name) that the state does not track is removed.

- list: ``GET /v1.0/applications/{object id}?$select=passwordCredentials``;
- remove: ``POST /v1.0/applications/{object id}/removePassword`` with ``{"keyId": ...}``,
  ``204 No Content`` (microsoftgraph/microsoft-graph-docs-contrib
  ``api-reference/v1.0/api/application-removepassword.md``).

Signed in the way pulumi-azuread is: a service principal's secret (``ARM_CLIENT_ID``,
``ARM_CLIENT_SECRET``, ``ARM_TENANT_ID``) through the client-credentials grant, else the Azure
CLI's login (``az account get-access-token --resource-type ms-graph``, as terraform-provider-
azuread's CLI authorizer runs it). ``PROVISION_AZURE_GRAPH_URL`` and ``AZURE_AUTHORITY_HOST``
point elsewhere than the public cloud (a national cloud; the tests' fake Graph). Tokens and
secrets never reach a message.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from provision.targets.rest import json_object

GRAPH_URL_ENV = "PROVISION_AZURE_GRAPH_URL"
AUTHORITY_ENV = "AZURE_AUTHORITY_HOST"  # the Azure SDKs' own variable for the sign-in host
GRAPH_URL = "https://graph.microsoft.com"
AUTHORITY = "https://login.microsoftonline.com"
TIMEOUT_S = 30.0
AZ_TIMEOUT_S = 60.0


class GraphError(Exception):
    """A Graph call or sign-in that failed: one line, never a token or a secret."""


@dataclass(frozen=True)
class PasswordCredential:
    """One client secret of an app, as Graph lists it (the value is never listed)."""

    key_id: str
    display_name: str
    start: str | None
    end: str | None


Runner = Callable[..., subprocess.CompletedProcess[str]]


def access_token(env: Mapping[str, str], tenant: str | None, run: Runner = subprocess.run) -> str:
    """A Microsoft Graph token for whoever runs the providers: ``ARM_CLIENT_ID`` with
    ``ARM_CLIENT_SECRET``, else the Azure CLI's login (in ``tenant`` when known)."""
    client_id = env.get("ARM_CLIENT_ID", "").strip()
    secret = env.get("ARM_CLIENT_SECRET", "")
    if client_id and secret:
        return _client_credentials(env, tenant or env.get("ARM_TENANT_ID", ""), client_id, secret)
    return _azure_cli_token(env, tenant, run)


def _client_credentials(env: Mapping[str, str], tenant: str, client_id: str, secret: str) -> str:
    """The client-credentials grant at the tenant's v2.0 token endpoint."""
    if not tenant:
        raise GraphError("ARM_CLIENT_ID is set but no tenant is known (set ARM_TENANT_ID)")
    authority = (env.get(AUTHORITY_ENV) or AUTHORITY).rstrip("/")
    try:
        response = httpx.post(
            f"{authority}/{tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
                "scope": f"{graph_url(env)}/.default",
            },
            timeout=TIMEOUT_S,
        )
    except httpx.HTTPError as exc:
        raise GraphError(f"signing in to {authority} failed ({type(exc).__name__})") from None
    body = json_object(response)
    token = body.get("access_token")
    if response.status_code != 200 or not isinstance(token, str):
        # Entra ID's error codes (AADSTS7000215: invalid secret, ...) name the problem and
        # hold nothing secret.
        code = body.get("error_codes") or body.get("error") or response.status_code
        raise GraphError(f"the service principal ARM_CLIENT_ID could not sign in ({code})")
    return token


def _azure_cli_token(env: Mapping[str, str], tenant: str | None, run: Runner) -> str:
    """``az account get-access-token``: the signed-in user's token for Graph."""
    az = shutil.which("az", path=env.get("PATH"))
    if az is None:
        raise GraphError(
            "no sign-in for Microsoft Graph: neither ARM_CLIENT_ID/ARM_CLIENT_SECRET nor the "
            "Azure CLI (`az`) on PATH"
        )
    command = [az, "account", "get-access-token", "--resource-type", "ms-graph", "-o", "json"]
    if tenant:
        command += ["--tenant", tenant]
    try:
        done = run(
            command,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=AZ_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GraphError(f"`az account get-access-token` failed ({type(exc).__name__})") from None
    try:
        token = json.loads(done.stdout).get("accessToken") if done.returncode == 0 else None
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        # Its last stderr line says why (`Please run 'az login'`); it holds no token.
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit {done.returncode}"
        raise GraphError(f"`az account get-access-token` gave no token: {why}")
    return token


def graph_url(env: Mapping[str, str]) -> str:
    """Microsoft Graph's base URL: the public cloud's unless ``PROVISION_AZURE_GRAPH_URL``."""
    return (env.get(GRAPH_URL_ENV) or GRAPH_URL).rstrip("/")


class Graph:
    """The two application calls the clean-up needs, with a bearer token."""

    def __init__(self, token: str, base_url: str, client: httpx.Client | None = None) -> None:
        self._base = f"{base_url.rstrip('/')}/v1.0"
        self._client = client or httpx.Client(timeout=TIMEOUT_S)
        self._headers = {"Authorization": f"Bearer {token}"}

    def passwords(self, app_object_id: str) -> list[PasswordCredential]:
        """The app's client secrets; ``GraphError`` if the app cannot be read."""
        response = self._call(
            "GET",
            f"/applications/{app_object_id}",
            params={"$select": "passwordCredentials"},
        )
        if response.status_code != 200:
            raise GraphError(f"reading application {app_object_id}: {_graph_error(response)}")
        listed = json_object(response).get("passwordCredentials")
        if not isinstance(listed, list):
            raise GraphError(f"reading application {app_object_id}: no passwordCredentials")
        return [
            PasswordCredential(
                key_id=str(item.get("keyId", "")),
                display_name=str(item.get("displayName") or ""),
                start=item.get("startDateTime"),
                end=item.get("endDateTime"),
            )
            for item in listed
            if isinstance(item, dict) and item.get("keyId")
        ]

    def remove_password(self, app_object_id: str, key_id: str) -> bool:
        """Remove one client secret; ``False`` when Graph no longer has it."""
        response = self._call(
            "POST", f"/applications/{app_object_id}/removePassword", json={"keyId": key_id}
        )
        if response.status_code == 204:
            return True
        if response.status_code == 404:
            return False
        raise GraphError(f"removing client secret {key_id}: {_graph_error(response)}")

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self._client.request(method, self._base + path, headers=self._headers, **kw)
        except httpx.HTTPError as exc:
            raise GraphError(f"Microsoft Graph unreachable ({type(exc).__name__})") from None


def _graph_error(response: httpx.Response) -> str:
    """``<status> <code>: <message>`` from Graph's error body."""
    error = json_object(response).get("error")
    if isinstance(error, dict):
        return f"{response.status_code} {error.get('code', '')}: {error.get('message', '')}"
    return f"HTTP {response.status_code}"
