"""Which Prefect API to talk to, resolved the way the ``prefect`` CLI would.

We read Prefect's own configuration (flags, environment, ``profiles.toml``) without importing
``prefect``: the tool must work next to any Prefect install, or none.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from provision.errors import InvalidInputError

API_URL_FLAG = "--prefect-api-url"
"""The CLI flag that overrides the API URL; named in messages and in ``PrefectApi.source``."""

RECORDED_SOURCE = "the pool's record"
"""``PrefectApi.source`` of the URL a pool was registered with."""

CLOUD_HOST = "api.prefect.cloud"

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# A Cloud workspace API URL; matching the path (not just the host) also recognises Cloud's
# other environments (staging, private deployments) under their own host names.
_WORKSPACE_PATH = re.compile(rf"/api/accounts/{_UUID}/workspaces/{_UUID}/?$")


@dataclass(frozen=True)
class PrefectApi:
    """A resolved Prefect API endpoint."""

    url: str
    """Base URL without a trailing slash, e.g. ``http://127.0.0.1:4200/api``."""
    key: str | None = field(repr=False)
    """Bearer API key; kept out of ``repr`` so it never lands in logs or tracebacks."""
    is_cloud: bool
    source: str
    """Where the URL came from, for messages: ``--prefect-api-url``, ``PREFECT_API_URL``,
    ``profile 'default'``."""
    auth_string: str | None = field(default=None, repr=False)
    """``user:password`` for a self-hosted server protected by ``PREFECT_SERVER_API_AUTH_STRING``
    (sent as HTTP Basic auth, as the ``prefect`` client does)."""

    @property
    def kind(self) -> str:
        """Human name of the server kind, for messages."""
        return "Prefect Cloud" if self.is_cloud else "self-hosted Prefect server"


@dataclass(frozen=True)
class _Layer:
    """One configuration source: its URL and key (either may be missing)."""

    source: str
    url: str | None
    key: str | None = field(repr=False)
    auth_string: str | None = field(default=None, repr=False)


def resolve_api(
    api_url: str | None = None,
    api_key: str | None = None,
    env: Mapping[str, str] = os.environ,
    recorded_url: str | None = None,
) -> PrefectApi:
    """Resolve the Prefect API from flags, then ``PREFECT_API_URL``/``PREFECT_API_KEY``/
    ``PREFECT_API_AUTH_STRING``, then the active profile in ``profiles.toml``, then
    ``recorded_url`` (the URL a pool was registered with, source "the pool's record").

    The URL comes from the first source that has one. The key (and the auth string) comes from
    the first source that has one *and* whose own URL (if it sets one) is the chosen URL: a
    credential configured for one API is never sent to another (e.g. ``--prefect-api-url
    http://localhost:4200/api`` must not receive the Cloud key from the profile).

    Raises ``InvalidInputError`` when no URL is configured, the URL is not http(s), or a Cloud
    URL has no key. Makes no network call.
    """
    layers = [
        _Layer(API_URL_FLAG, _clean(api_url), _clean(api_key)),
        _Layer(
            "PREFECT_API_URL",
            _clean(env.get("PREFECT_API_URL")),
            _clean(env.get("PREFECT_API_KEY")),
            _clean(env.get("PREFECT_API_AUTH_STRING")),
        ),
    ]
    # The profile is read only when flags and environment leave something open, so a broken
    # profiles.toml does not get in the way of a user who passes everything explicitly.
    missing_url = all(layer.url is None for layer in layers)
    missing_key = all(layer.key is None and layer.auth_string is None for layer in layers)
    if missing_url or missing_key:
        profile = _profile_layer(env)
        if profile is not None:
            layers.append(profile)
    if recorded_url:
        layers.append(_Layer(RECORDED_SOURCE, _clean(recorded_url), None))

    chosen = next((layer for layer in layers if layer.url is not None), None)
    if chosen is None or chosen.url is None:
        raise InvalidInputError(
            "No Prefect API configured: set PREFECT_API_URL, use `prefect profile use`, "
            f"or pass {API_URL_FLAG}."
        )
    url = _validate_url(chosen.url, chosen.source)

    def credential(pick: Callable[[_Layer], str | None]) -> str | None:
        return next(
            (
                pick(layer)
                for layer in layers
                if pick(layer) is not None and (layer.url is None or layer.url.rstrip("/") == url)
            ),
            None,
        )

    key = credential(lambda layer: layer.key)
    auth_string = credential(lambda layer: layer.auth_string)
    is_cloud = _is_cloud(url)
    if is_cloud and key is None:
        raise InvalidInputError(
            f"Prefect Cloud at {url} (from {chosen.source}) needs an API key: set "
            "PREFECT_API_KEY or run `prefect cloud login`."
        )
    return PrefectApi(
        url=url,
        key=key,
        is_cloud=is_cloud,
        source=chosen.source,
        # Prefect Cloud authenticates with keys only; Basic auth is a self-hosted server's.
        auth_string=None if is_cloud else auth_string,
    )


def _clean(value: object) -> str | None:
    """Treat unset and blank the same: ``PREFECT_API_URL=`` means "not set"."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _validate_url(url: str, source: str) -> str:
    """Check the URL is usable as an API base and normalise it (no trailing slash)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            f"Invalid Prefect API URL '{url}' (from {source}): expected http(s)://host/api."
        )
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL would be echoed in every message that names the API; the
        # password part is deliberately not repeated here.
        raise InvalidInputError(
            f"The Prefect API URL from {source} contains credentials: remove them and set "
            "PREFECT_API_KEY instead."
        )
    if parts.hostname == CLOUD_HOST and not _WORKSPACE_PATH.search(parts.path):
        raise InvalidInputError(
            f"Prefect Cloud URL '{url}' (from {source}) does not name a workspace: expected "
            f"https://{CLOUD_HOST}/api/accounts/<account id>/workspaces/<workspace id> "
            "(`prefect cloud workspace set` writes it)."
        )
    return url.rstrip("/")


def _is_cloud(url: str) -> bool:
    parts = urlsplit(url)
    return parts.hostname == CLOUD_HOST or bool(_WORKSPACE_PATH.search(parts.path))


def _profiles_path(env: Mapping[str, str]) -> Path:
    """``PREFECT_PROFILES_PATH``, else ``$PREFECT_HOME/profiles.toml`` (Prefect's defaults)."""
    explicit = _clean(env.get("PREFECT_PROFILES_PATH"))
    if explicit:
        return Path(explicit).expanduser()
    home = _clean(env.get("PREFECT_HOME")) or "~/.prefect"
    return Path(home).expanduser() / "profiles.toml"


def _profile_layer(env: Mapping[str, str]) -> _Layer | None:
    """The active profile's URL and key, or ``None`` when there is no profiles file."""
    path = _profiles_path(env)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInputError(f"Cannot read Prefect profiles {path}: {exc.strerror}.") from None
    try:
        # tomllib's messages give only a position, never the offending text (which could be a
        # key), so they are safe to repeat.
        doc = tomllib.loads(raw.decode("utf-8", errors="replace"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"Cannot parse Prefect profiles {path}: {exc}.") from None

    profiles = doc.get("profiles", {})
    selected = _clean(env.get("PREFECT_PROFILE"))
    name = selected or _clean(doc.get("active"))
    if name is None:
        return None
    table = profiles.get(name) if isinstance(profiles, dict) else None
    if table is None:
        if selected:
            raise InvalidInputError(
                f"Prefect profile '{name}' (from PREFECT_PROFILE) is not defined in {path}."
            )
        # An `active` that names a missing profile: Prefect falls back to its built-in
        # defaults, which have no API URL; so do we.
        return None
    if not isinstance(table, dict):
        raise InvalidInputError(f"Prefect profile '{name}' in {path} is not a table.")
    return _Layer(
        f"profile '{name}'",
        _clean(table.get("PREFECT_API_URL")),
        _clean(table.get("PREFECT_API_KEY")),
        _clean(table.get("PREFECT_API_AUTH_STRING")),
    )
