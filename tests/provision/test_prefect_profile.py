"""The active Prefect profile's image namespace: one key read and written, nothing else."""

from __future__ import annotations

import pytest

from provision.errors import InvalidInputError
from provision.prefect import profile
from provision.prefect.profile import NAMESPACE_SETTING

PROFILES = """\
# my profiles, hand-edited
active = "work"

[profiles.work]
PREFECT_API_URL = "http://127.0.0.1:4200/api"  # the team server
PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE = "docker.io/me"

[profiles.home]
PREFECT_API_URL = "http://127.0.0.1:4300/api"
"""


@pytest.fixture
def home(tmp_path):
    (tmp_path / "profiles.toml").write_text(PROFILES)
    return tmp_path


def env(home, **extra: str) -> dict[str, str]:
    return {"PREFECT_HOME": str(home), **extra}


def test_reads_the_key_of_the_active_profile(home):
    setting = profile.read(env(home))
    assert (setting.profile, setting.key, setting.value) == (
        "work",
        NAMESPACE_SETTING,
        "docker.io/me",
    )
    assert setting.path == home / "profiles.toml"
    assert profile.read(env(home, PREFECT_PROFILE="home")).value is None


def test_writing_changes_that_key_of_that_profile_and_nothing_else(home):
    setting = profile.read(env(home))
    profile.write(setting, "europe-west1-docker.pkg.dev/proj/etl-images")
    text = (home / "profiles.toml").read_text()
    # Every other line as the user wrote it, comments included.
    assert text == PROFILES.replace("docker.io/me", "europe-west1-docker.pkg.dev/proj/etl-images")
    profile.write(profile.read(env(home)), None)
    assert NAMESPACE_SETTING not in (home / "profiles.toml").read_text()
    assert "# the team server" in (home / "profiles.toml").read_text()
    # Another profile gets the key added in its own table.
    other = profile.read(env(home, PREFECT_PROFILE="home"))
    profile.write(other, "acr.example.io")
    assert profile.read(env(home, PREFECT_PROFILE="home")).value == "acr.example.io"
    assert profile.read(env(home)).value is None


@pytest.mark.parametrize(
    ("content", "extra", "needle"),
    [
        (None, {}, "No Prefect profiles file at"),
        ('active = "gone"\n', {}, "No profile 'gone' in"),
        ("[profiles.work]\n", {}, "No active profile in"),
        (PROFILES, {"PREFECT_PROFILE": "nope"}, "No profile 'nope' in"),
        ("active = [broken\n", {}, "Cannot parse Prefect profiles"),
    ],
    ids=["no-file", "active-missing", "no-active", "selected-missing", "broken"],
)
def test_no_profile_to_write_to_is_one_line(tmp_path, content, extra, needle):
    if content is not None:
        (tmp_path / "profiles.toml").write_text(content)
    with pytest.raises(InvalidInputError, match=needle) as err:
        profile.read(env(tmp_path, **extra))
    assert "\n" not in str(err.value)
    # Refused, not created: Prefect's built-in profiles would be hidden by one made here.
    if content is None:
        assert not (tmp_path / "profiles.toml").exists()
