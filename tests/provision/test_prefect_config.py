"""Resolving the Prefect API from flags, environment and profiles.toml (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.errors import InvalidInputError
from provision.prefect.config import PrefectApi, resolve_api

ACCOUNT = "0a1b2c3d-0000-4000-8000-000000000001"
WORKSPACE = "0a1b2c3d-0000-4000-8000-000000000002"
CLOUD_URL = f"https://api.prefect.cloud/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}"
SECRET = "pnu_s3cr3t-key-value"


def write_profiles(home: Path, text: str) -> dict[str, str]:
    """A PREFECT_HOME with the given profiles.toml; returns the env that points at it."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "profiles.toml").write_text(text)
    return {"PREFECT_HOME": str(home)}


def test_flags_win_over_env_and_profile(tmp_path: Path) -> None:
    env = write_profiles(
        tmp_path, 'active = "default"\n[profiles.default]\nPREFECT_API_URL = "http://p:1/api"\n'
    )
    env["PREFECT_API_URL"] = "http://env:2/api"
    api = resolve_api("http://flag:3/api/", None, env)
    assert api == PrefectApi("http://flag:3/api", None, False, "--prefect-api-url")


def test_env_wins_over_profile(tmp_path: Path) -> None:
    env = write_profiles(
        tmp_path, 'active = "default"\n[profiles.default]\nPREFECT_API_URL = "http://p:1/api"\n'
    )
    env["PREFECT_API_URL"] = "http://env:2/api"
    api = resolve_api(env=env)
    assert (api.url, api.source) == ("http://env:2/api", "PREFECT_API_URL")


def test_the_pools_recorded_url_comes_last_and_is_named_as_such(tmp_path: Path) -> None:
    recorded = "http://recorded:4/api"
    env = {"PREFECT_HOME": str(tmp_path / "none"), "PREFECT_API_KEY": SECRET}
    api = resolve_api(env=env, recorded_url=recorded)
    assert (api.url, api.source, api.key) == (recorded, "the pool's record", SECRET)
    env["PREFECT_API_URL"] = "http://env:2/api"
    assert resolve_api(env=env, recorded_url=recorded).source == "PREFECT_API_URL"
    assert resolve_api("http://f:3/api", None, env, recorded).source == "--prefect-api-url"
    profile = write_profiles(
        tmp_path / "p", 'active = "x"\n[profiles.x]\nPREFECT_API_URL = "http://p:1/api"\n'
    )
    assert resolve_api(env=profile, recorded_url=recorded).source == "profile 'x'"


def test_active_profile_from_file(tmp_path: Path) -> None:
    env = write_profiles(
        tmp_path,
        'active = "work"\n'
        '[profiles.default]\nPREFECT_API_URL = "http://default:1/api"\n'
        f'[profiles.work]\nPREFECT_API_URL = "{CLOUD_URL}"\nPREFECT_API_KEY = "{SECRET}"\n',
    )
    api = resolve_api(env=env)
    assert api.url == CLOUD_URL
    assert api.key == SECRET
    assert api.is_cloud
    assert api.source == "profile 'work'"


def test_prefect_profile_env_selects_profile(tmp_path: Path) -> None:
    env = write_profiles(
        tmp_path,
        'active = "work"\n'
        '[profiles.local]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n'
        f'[profiles.work]\nPREFECT_API_URL = "{CLOUD_URL}"\nPREFECT_API_KEY = "{SECRET}"\n',
    )
    env["PREFECT_PROFILE"] = "local"
    api = resolve_api(env=env)
    assert (api.url, api.key, api.is_cloud) == ("http://127.0.0.1:4200/api", None, False)
    assert api.source == "profile 'local'"


def test_unknown_prefect_profile_is_an_error(tmp_path: Path) -> None:
    env = write_profiles(tmp_path, 'active = "default"\n[profiles.default]\n')
    env["PREFECT_PROFILE"] = "nope"
    with pytest.raises(InvalidInputError, match=r"'nope'.*PREFECT_PROFILE"):
        resolve_api(env=env)


def test_profiles_path_env_points_at_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('active = "x"\n[profiles.x]\nPREFECT_API_URL = "http://x:1/api"\n')
    api = resolve_api(env={"PREFECT_PROFILES_PATH": str(path), "PREFECT_HOME": "/nonexistent"})
    assert api.url == "http://x:1/api"


def test_env_key_with_profile_url(tmp_path: Path) -> None:
    env = write_profiles(tmp_path, f'active = "c"\n[profiles.c]\nPREFECT_API_URL = "{CLOUD_URL}"\n')
    env["PREFECT_API_KEY"] = SECRET
    api = resolve_api(env=env)
    assert (api.url, api.key, api.source) == (CLOUD_URL, SECRET, "profile 'c'")


def test_profile_key_is_not_sent_to_another_api(tmp_path: Path) -> None:
    # The profile's Cloud key belongs to the profile's Cloud URL, not to a URL given by flag.
    env = write_profiles(
        tmp_path,
        f'active = "c"\n[profiles.c]\nPREFECT_API_URL = "{CLOUD_URL}"\n'
        f'PREFECT_API_KEY = "{SECRET}"\n',
    )
    api = resolve_api("http://127.0.0.1:4200/api", env=env)
    assert api.key is None
    assert not api.is_cloud


def test_flag_key_wins(tmp_path: Path) -> None:
    api = resolve_api(CLOUD_URL, "pnu_flag", {"PREFECT_API_KEY": SECRET, "PREFECT_HOME": "/x"})
    assert api.key == "pnu_flag"


def test_no_url_anywhere(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        resolve_api(env={"PREFECT_HOME": str(tmp_path / "missing")})
    assert str(info.value) == (
        "No Prefect API configured: set PREFECT_API_URL, use `prefect profile use`, "
        "or pass --prefect-api-url."
    )
    assert info.value.exit_code == 2


def test_profile_without_url_and_blank_env(tmp_path: Path) -> None:
    env = write_profiles(tmp_path, 'active = "ephemeral"\n[profiles.ephemeral]\nX = "1"\n')
    env["PREFECT_API_URL"] = "  "
    with pytest.raises(InvalidInputError, match="No Prefect API configured"):
        resolve_api(env=env)


def test_active_names_a_missing_profile(tmp_path: Path) -> None:
    env = write_profiles(tmp_path, 'active = "gone"\n')
    with pytest.raises(InvalidInputError, match="No Prefect API configured"):
        resolve_api(env=env)


def test_broken_profiles_file_names_the_file_not_its_content(tmp_path: Path) -> None:
    env = write_profiles(tmp_path, f'active = "x"\n[profiles.x]\nPREFECT_API_KEY = {SECRET}\n')
    with pytest.raises(InvalidInputError) as info:
        resolve_api(env=env)
    assert "profiles.toml" in str(info.value)
    assert SECRET not in str(info.value)


def test_broken_profiles_file_is_not_read_when_flags_suffice(tmp_path: Path) -> None:
    env = write_profiles(tmp_path, "this is not toml [")
    api = resolve_api(CLOUD_URL, SECRET, env)
    assert api.is_cloud


@pytest.mark.parametrize(
    "url",
    ["ftp://host/api", "127.0.0.1:4200/api", "http:///api", "not a url"],
)
def test_invalid_urls(url: str) -> None:
    with pytest.raises(InvalidInputError, match=r"Invalid Prefect API URL .*--prefect-api-url"):
        resolve_api(url, env={})


def test_credentials_in_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidInputError) as info:
        resolve_api("http://user:hunter22@host/api", env={})
    assert "hunter22" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "is_cloud"),
    [
        (CLOUD_URL, True),
        (CLOUD_URL + "/", True),
        (f"https://prefect.internal.example/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}", True),
        ("http://127.0.0.1:4200/api", False),
        ("https://prefect.example.com/api", False),
        (f"https://prefect.example.com/api/accounts/{ACCOUNT}/workspaces/nope", False),
    ],
)
def test_cloud_detection(url: str, is_cloud: bool) -> None:
    api = resolve_api(url, SECRET, env={})
    assert api.is_cloud is is_cloud
    assert api.url == url.rstrip("/")


def test_cloud_host_without_workspace_path() -> None:
    with pytest.raises(InvalidInputError, match="does not name a workspace"):
        resolve_api("https://api.prefect.cloud/api", SECRET, env={})


def test_cloud_without_key() -> None:
    with pytest.raises(InvalidInputError, match="needs an API key") as info:
        resolve_api(CLOUD_URL, env={})
    assert info.value.exit_code == 2


def test_key_never_in_repr_or_str() -> None:
    api = resolve_api(CLOUD_URL, SECRET, env={})
    assert SECRET not in repr(api)
    assert SECRET not in str(api)
    assert api.kind == "Prefect Cloud"


AUTH = "admin:s3cr3t-pass"


def test_auth_string_from_env_or_profile_binds_to_its_url(tmp_path: Path) -> None:
    env = {"PREFECT_API_URL": "http://127.0.0.1:4200/api", "PREFECT_API_AUTH_STRING": AUTH}
    assert resolve_api(env=env).auth_string == AUTH
    env = write_profiles(
        tmp_path,
        'active = "s"\n[profiles.s]\nPREFECT_API_URL = "http://srv:4200/api"\n'
        f'PREFECT_API_AUTH_STRING = "{AUTH}"\n',
    )
    assert resolve_api(env=env).auth_string == AUTH
    # Like a key, the profile's auth string is never sent to another server.
    assert resolve_api("http://other:4200/api", env=env).auth_string is None


def test_prefect_cloud_never_gets_an_auth_string() -> None:
    api = resolve_api(CLOUD_URL, SECRET, {"PREFECT_API_AUTH_STRING": AUTH})
    assert (api.key, api.auth_string) == (SECRET, None)


def test_auth_string_never_in_repr() -> None:
    api = resolve_api(env={"PREFECT_API_URL": "http://s/api", "PREFECT_API_AUTH_STRING": AUTH})
    assert AUTH not in repr(api) and "s3cr3t" not in str(api)
