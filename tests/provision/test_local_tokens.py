"""Modal and Coiled tokens read as their own clients read them (provision.targets.local_tokens).

Every test passes an explicit env with HOME in a temporary directory, and the dask prefixes
(``sys.prefix``, ``site.PREFIXES``) are pointed there too, so nothing on this machine leaks in.
"""

from __future__ import annotations

import base64
import json
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from provision.errors import InvalidInputError
from provision.targets import local_tokens
from provision.targets.local_tokens import CoiledToken, ModalToken, coiled_token, modal_token

SECRET = "as-SECRETSECRET"
TOKEN = "abc123-COILEDSECRET"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME; the interpreter's dask prefixes moved under it too."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "sys-prefix"))
    monkeypatch.setattr(site, "PREFIXES", [str(tmp_path / "site-prefix")])
    return home


def env_for(home: Path, **extra: str) -> dict[str, str]:
    # DASK_ROOT_CONFIG too: its default, /etc/dask, is outside the test's control.
    return {"HOME": str(home), "DASK_ROOT_CONFIG": str(home / "no-root-config"), **extra}


def modal_toml(home: Path, text: str, name: str = ".modal.toml") -> Path:
    path = home / name
    path.write_text(textwrap.dedent(text))
    return path


def one_line_error(excinfo: pytest.ExceptionInfo[InvalidInputError], *secrets: str) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    for secret in (SECRET, TOKEN, *secrets):
        assert secret not in text
    return text


# --- Modal: where the token comes from ---------------------------------------------------


def test_modal_env_pair_wins_and_the_file_is_not_read(home):
    modal_toml(home, "this is [not toml")
    token = modal_token(env_for(home, MODAL_TOKEN_ID="ak-env", MODAL_TOKEN_SECRET=SECRET))
    assert token == ModalToken("ak-env", SECRET, "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET")


def test_modal_default_profile_from_home(home):
    path = modal_toml(
        home,
        f"""
        [default]
        token_id = "ak-default"
        token_secret = "{SECRET}"
        """,
    )
    assert modal_token(env_for(home)) == ModalToken(
        "ak-default", SECRET, f"{path} (profile 'default')"
    )


def test_modal_active_profile_beats_default(home):
    modal_toml(
        home,
        f"""
        [default]
        token_id = "ak-default"
        token_secret = "{SECRET}"

        [work]
        token_id = "ak-work"
        token_secret = "{SECRET}"
        active = true
        """,
    )
    token = modal_token(env_for(home))
    assert token is not None
    assert token.token_id == "ak-work"
    assert "(profile 'work')" in token.source


def test_modal_profile_env_beats_active_and_empty_means_unset(home):
    modal_toml(
        home,
        f"""
        [work]
        token_id = "ak-work"
        token_secret = "{SECRET}"
        active = true

        [play]
        token_id = "ak-play"
        token_secret = "{SECRET}"
        """,
    )
    assert modal_token(env_for(home, MODAL_PROFILE="play")).token_id == "ak-play"
    assert modal_token(env_for(home, MODAL_PROFILE="")).token_id == "ak-work"


def test_modal_active_must_be_a_toml_boolean(home):
    # _config_active_profile tests `is True`: "true" as a string does not activate.
    modal_toml(
        home,
        f"""
        [default]
        token_id = "ak-default"
        token_secret = "{SECRET}"

        [work]
        token_id = "ak-work"
        token_secret = "{SECRET}"
        active = "true"
        """,
    )
    with pytest.raises(InvalidInputError, match="No Modal profile is active"):
        modal_token(env_for(home))


def test_modal_a_lone_inactive_profile_not_named_default_is_not_used(home):
    # Modal falls back to "default", not to "the only profile".
    modal_toml(
        home,
        f"""
        [solo]
        token_id = "ak-solo"
        token_secret = "{SECRET}"
        """,
    )
    assert modal_token(env_for(home)) is None
    assert modal_token(env_for(home, MODAL_PROFILE="solo")).token_id == "ak-solo"


def test_modal_config_path_env_overrides_home_and_empty_means_default(home):
    modal_toml(home, f'[default]\ntoken_id = "ak-home"\ntoken_secret = "{SECRET}"\n')
    other = modal_toml(home, f'[default]\ntoken_id = "ak-other"\ntoken_secret = "{SECRET}"\n', "x")
    assert modal_token(env_for(home, MODAL_CONFIG_PATH=str(other))).token_id == "ak-other"
    assert modal_token(env_for(home, MODAL_CONFIG_PATH="")).token_id == "ak-home"


def test_modal_env_id_overrides_only_its_own_key(home):
    path = modal_toml(home, f'[default]\ntoken_id = "ak-file"\ntoken_secret = "{SECRET}"\n')
    token = modal_token(env_for(home, MODAL_TOKEN_ID="ak-env"))
    assert token == ModalToken("ak-env", SECRET, f"MODAL_TOKEN_ID + {path} (profile 'default')")


def test_modal_env_secret_overrides_only_its_own_key(home):
    modal_toml(home, '[default]\ntoken_id = "ak-file"\ntoken_secret = "as-file"\n')
    token = modal_token(env_for(home, MODAL_TOKEN_SECRET=SECRET))
    assert (token.token_id, token.token_secret) == ("ak-file", SECRET)
    assert token.source.endswith("+ MODAL_TOKEN_SECRET")


def test_modal_nothing_anywhere_is_none(home):
    assert modal_token(env_for(home)) is None
    modal_toml(home, "")
    assert modal_token(env_for(home)) is None


def test_modal_is_remote_skips_the_file(home):
    modal_toml(home, f'[default]\ntoken_id = "ak-file"\ntoken_secret = "{SECRET}"\n')
    assert modal_token(env_for(home, MODAL_IS_REMOTE="1")) is None


# --- Modal: what is refused ----------------------------------------------------------------


def test_modal_malformed_toml_names_the_file(home):
    path = modal_toml(home, f'[default]\ntoken_id = "ak"\ntoken_secret = "{SECRET}\n')
    with pytest.raises(InvalidInputError) as excinfo:
        modal_token(env_for(home))
    text = one_line_error(excinfo)
    assert str(path) in text
    assert "not valid TOML" in text


def test_modal_plain_top_level_value_names_the_key_not_the_value(home):
    modal_toml(home, f'token_secret = "{SECRET}"\n')
    with pytest.raises(InvalidInputError) as excinfo:
        modal_token(env_for(home))
    assert "'token_secret' is a plain value" in one_line_error(excinfo)


def test_modal_non_string_token_is_refused(home):
    modal_toml(home, '[default]\ntoken_id = 12345\ntoken_secret = "x"\n')
    with pytest.raises(InvalidInputError, match=r"'token_id' in .* is a TOML int, not a string"):
        modal_token(env_for(home))


def test_modal_id_without_secret_is_half_configured(home):
    with pytest.raises(InvalidInputError) as excinfo:
        modal_token(env_for(home, MODAL_TOKEN_ID="ak-env"))
    text = one_line_error(excinfo, "ak-env")
    assert text.startswith("Half a Modal token: token_id comes from MODAL_TOKEN_ID")
    assert "neither MODAL_TOKEN_SECRET nor" in text


def test_modal_secret_without_id_in_the_file_is_half_configured(home):
    modal_toml(home, f'[default]\ntoken_secret = "{SECRET}"\n')
    with pytest.raises(InvalidInputError) as excinfo:
        modal_token(env_for(home))
    assert "token_secret comes from" in one_line_error(excinfo)


def test_modal_empty_env_id_masks_the_file_and_is_half_configured(home):
    # Config.get checks `in os.environ`: an empty MODAL_TOKEN_ID still overrides the file.
    modal_toml(home, f'[default]\ntoken_id = "ak-file"\ntoken_secret = "{SECRET}"\n')
    with pytest.raises(InvalidInputError) as excinfo:
        modal_token(env_for(home, MODAL_TOKEN_ID=""))
    assert "MODAL_TOKEN_ID is set but empty" in one_line_error(excinfo)


def test_modal_unknown_profile_names_the_ones_there(home):
    modal_toml(
        home,
        f"""
        [work]
        token_id = "ak-work"
        token_secret = "{SECRET}"
        active = true

        [play]
        token_id = "ak-play"
        token_secret = "{SECRET}"
        """,
    )
    with pytest.raises(InvalidInputError) as excinfo:
        modal_token(env_for(home, MODAL_PROFILE="wrok"))
    text = one_line_error(excinfo)
    assert "MODAL_PROFILE is 'wrok'" in text
    assert "its profiles are: work, play. Use one of them" in text


def test_modal_unknown_profile_without_a_file(home):
    with pytest.raises(InvalidInputError, match="that file does not exist"):
        modal_token(env_for(home, MODAL_PROFILE="work"))


def test_modal_unknown_profile_when_remote_says_the_file_was_not_read(home):
    modal_toml(home, '[work]\ntoken_id = "ak"\n')
    with pytest.raises(InvalidInputError, match="MODAL_IS_REMOTE=1 keeps Modal from reading it"):
        modal_token(env_for(home, MODAL_PROFILE="work", MODAL_IS_REMOTE="1"))


def test_modal_unknown_profile_is_fine_when_the_env_holds_the_whole_token(home):
    env = env_for(home, MODAL_PROFILE="nope", MODAL_TOKEN_ID="ak", MODAL_TOKEN_SECRET=SECRET)
    assert modal_token(env).token_id == "ak"


def test_modal_two_active_profiles_is_an_error(home):
    modal_toml(home, "[a]\nactive = true\n[b]\nactive = true\n")
    with pytest.raises(
        InvalidInputError, match=r"More than one Modal profile is active .*\(a, b\)"
    ):
        modal_token(env_for(home, MODAL_PROFILE="a"))


def test_modal_several_profiles_none_active_is_an_error_unless_one_is_named(home):
    modal_toml(
        home,
        f"""
        [default]
        token_id = "ak-default"
        token_secret = "{SECRET}"

        [work]
        token_id = "ak-work"
        token_secret = "{SECRET}"
        """,
    )
    # Modal refuses even though a [default] exists (_check_config).
    with pytest.raises(InvalidInputError) as excinfo:
        modal_token(env_for(home))
    assert "No Modal profile is active" in one_line_error(excinfo)
    assert modal_token(env_for(home, MODAL_PROFILE="work")).token_id == "ak-work"


def test_modal_repr_hides_the_secret():
    token = ModalToken("ak-id", SECRET, "somewhere")
    assert SECRET not in repr(token)
    assert SECRET not in str(token)
    assert "ak-id" in repr(token)


# --- Coiled: where the token comes from ----------------------------------------------------


def dask_yaml(directory: Path, text: str, name: str = "coiled.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def login_file(home: Path, token: str = TOKEN) -> Path:
    """What `coiled login` writes (save_config) with no DASK_CONFIG."""
    return dask_yaml(
        home / ".config" / "dask",
        f"coiled:\n  server: https://cloud.coiled.io\n  token: {token}\n  user: me\n",
    )


def test_coiled_login_file_in_home(home):
    path = login_file(home)
    assert coiled_token(env_for(home)) == CoiledToken(TOKEN, str(path))


def test_coiled_env_wins_and_no_file_is_read(home):
    dask_yaml(home / ".config" / "dask", "coiled: [unclosed\n")
    token = coiled_token(env_for(home, DASK_COILED__TOKEN="env-token"))
    assert token == CoiledToken("env-token", "DASK_COILED__TOKEN")


def test_coiled_env_name_is_case_insensitive_after_the_prefix(home):
    login_file(home)
    assert coiled_token(env_for(home, DASK_Coiled__Token="env-token")).token == "env-token"


def test_coiled_env_values_are_python_literals(home):
    login_file(home)
    assert coiled_token(env_for(home, DASK_COILED__TOKEN="'quoted'")).token == "quoted"
    # `none` is dask's None, and a None from the environment masks the files.
    assert coiled_token(env_for(home, DASK_COILED__TOKEN="none")) is None


def test_coiled_empty_env_value_is_no_token_and_hides_the_files(home):
    login_file(home)
    assert coiled_token(env_for(home, DASK_COILED__TOKEN="")) is None


def test_coiled_env_values_dask_cannot_load_are_errors(home):
    with pytest.raises(InvalidInputError, match="DASK_COILED is not a value dask can read"):
        coiled_token(env_for(home, DASK_COILED="{[]: 1}"))
    # dask's set() fails assigning coiled.token inside the plain value DASK_COILED gave.
    env = env_for(home, DASK_COILED="'plain'", DASK_COILED__TOKEN="x")
    with pytest.raises(InvalidInputError, match="DASK_COILED__TOKEN nests a key under a value"):
        coiled_token(env)


def test_coiled_env_value_that_reads_as_a_number_is_refused(home):
    with pytest.raises(InvalidInputError) as excinfo:
        coiled_token(env_for(home, DASK_COILED__TOKEN="123456"))
    text = one_line_error(excinfo, "123456")
    assert "coiled.token from DASK_COILED__TOKEN is not a string but of type int" in text
    assert "Python literals" in text


def test_coiled_env_dict_literal_and_inherited_config(home):
    assert coiled_token(env_for(home, DASK_COILED="{'token': 'dict'}")) == CoiledToken(
        "dict", "DASK_COILED"
    )
    inherit = base64.urlsafe_b64encode(json.dumps({"coiled": {"token": "inh"}}).encode()).decode()
    env = env_for(home, DASK_INTERNAL_INHERIT_CONFIG=inherit)
    assert coiled_token(env) == CoiledToken("inh", "DASK_INTERNAL_INHERIT_CONFIG")
    # collect_env applies DASK_* variables after the inherited config.
    assert coiled_token({**env, "DASK_COILED__TOKEN": "direct"}).token == "direct"


def test_coiled_bad_inherited_config_is_an_error(home):
    with pytest.raises(InvalidInputError, match="DASK_INTERNAL_INHERIT_CONFIG is not base64"):
        coiled_token(env_for(home, DASK_INTERNAL_INHERIT_CONFIG="%%%"))


def test_coiled_dask_config_dir_beats_home(home, tmp_path):
    login_file(home, "home-token")
    custom = dask_yaml(tmp_path / "dask-config", "coiled:\n  token: custom-token\n")
    token = coiled_token(env_for(home, DASK_CONFIG=str(custom.parent)))
    assert token == CoiledToken("custom-token", str(custom))


def test_coiled_files_merge_key_by_key(home, tmp_path):
    # A higher-priority file without coiled.token does not hide the lower one's token.
    path = login_file(home)
    dask_yaml(tmp_path / "dask-config", "coiled:\n  workspace: other\n")
    token = coiled_token(env_for(home, DASK_CONFIG=str(tmp_path / "dask-config")))
    assert token == CoiledToken(TOKEN, str(path))


def test_coiled_explicit_null_in_a_higher_file_masks_a_lower_token(home, tmp_path):
    login_file(home)
    dask_yaml(tmp_path / "dask-config", "coiled:\n  token: null\n")
    assert coiled_token(env_for(home, DASK_CONFIG=str(tmp_path / "dask-config"))) is None


def test_coiled_dask_config_may_name_a_file(home, tmp_path):
    login_file(home)
    path = dask_yaml(tmp_path, "coiled:\n  token: from-file\n", "settings.conf")
    assert coiled_token(env_for(home, DASK_CONFIG=str(path))).token == "from-file"


def test_coiled_in_one_directory_later_sorted_files_win_and_only_yaml_json_count(home):
    directory = home / ".config" / "dask"
    dask_yaml(directory, "coiled:\n  token: from-a\n", "a.yaml")
    dask_yaml(directory, '{"coiled": {"token": "from-b-json"}}', "b.JSON")
    dask_yaml(directory, "coiled:\n  token: from-z-txt\n", "z.txt")
    token = coiled_token(env_for(home))
    assert token == CoiledToken("from-b-json", str(directory / "b.JSON"))


def test_coiled_path_priority_root_prefixes_home_dask_config(home, tmp_path):
    root = tmp_path / "root"
    env = env_for(home, DASK_ROOT_CONFIG=str(root), DASK_CONFIG=str(tmp_path / "dask-config"))
    assert local_tokens._dask_paths(env) == [
        str(root),
        str(tmp_path / "sys-prefix" / "etc" / "dask"),
        str(tmp_path / "site-prefix" / "etc" / "dask"),
        str(home / ".config" / "dask"),
        str(tmp_path / "dask-config"),
    ]
    levels = [
        root,
        tmp_path / "sys-prefix" / "etc" / "dask",
        tmp_path / "site-prefix" / "etc" / "dask",
        home / ".config" / "dask",
        tmp_path / "dask-config",
    ]
    for index, directory in enumerate(levels):
        dask_yaml(directory, f"coiled:\n  token: level-{index}\n")
    for index in reversed(range(len(levels))):
        assert coiled_token(env).token == f"level-{index}"
        (levels[index] / "coiled.yaml").unlink()
    assert coiled_token(env) is None


def test_coiled_duplicate_paths_keep_their_highest_place(home):
    env = env_for(home, DASK_CONFIG=str(home / ".config" / "dask"))
    paths = local_tokens._dask_paths(env)
    assert paths.count(str(home / ".config" / "dask")) == 1
    assert paths[-1] == str(home / ".config" / "dask")


def test_coiled_no_files_and_empty_files_are_none(home):
    assert coiled_token(env_for(home)) is None
    dask_yaml(home / ".config" / "dask", "")
    assert coiled_token(env_for(home)) is None
    dask_yaml(home / ".config" / "dask", "distributed:\n  admin: {}\n")
    assert coiled_token(env_for(home)) is None


def test_coiled_blank_token_is_none_and_a_token_is_stripped(home):
    login_file(home, '"   "')
    assert coiled_token(env_for(home)) is None
    login_file(home, f'"  {TOKEN}  "')
    assert coiled_token(env_for(home)).token == TOKEN


# --- Coiled: what is refused ---------------------------------------------------------------


def test_coiled_malformed_yaml_names_the_file_and_not_the_token(home):
    path = dask_yaml(home / ".config" / "dask", f"coiled:\n  token: {TOKEN}\n  bad: [\n")
    with pytest.raises(InvalidInputError) as excinfo:
        coiled_token(env_for(home))
    text = one_line_error(excinfo)
    assert text.startswith(f"The dask config file {path} is malformed:")
    assert "line 4" in text


def test_coiled_malformed_lower_priority_file_is_still_an_error(home, tmp_path):
    # dask parses every file at import; one bad file stops coiled whatever the others say.
    dask_yaml(home / ".config" / "dask", "coiled: {token: [\n")
    dask_yaml(tmp_path / "dask-config", "coiled:\n  token: fine\n")
    with pytest.raises(InvalidInputError, match="is malformed"):
        coiled_token(env_for(home, DASK_CONFIG=str(tmp_path / "dask-config")))


def test_coiled_top_level_must_be_a_mapping(home):
    dask_yaml(home / ".config" / "dask", f"- {TOKEN}\n")
    with pytest.raises(InvalidInputError) as excinfo:
        coiled_token(env_for(home))
    assert "its top level is a list, not a mapping" in one_line_error(excinfo)


def test_coiled_non_string_token_in_a_file_is_refused(home):
    path = login_file(home, "[1, 2]")
    with pytest.raises(InvalidInputError) as excinfo:
        coiled_token(env_for(home))
    assert f"coiled.token from {path} is not a string but of type list" in one_line_error(excinfo)


def test_coiled_repr_hides_the_token():
    token = CoiledToken(TOKEN, "somewhere")
    assert TOKEN not in repr(token)
    assert TOKEN not in str(token)
    assert "somewhere" in repr(token)


# --- Imports -------------------------------------------------------------------------------


def test_importing_and_reading_modal_imports_neither_yaml_nor_the_clients(tmp_path):
    # A fresh interpreter: this one may already hold yaml (pulumi and prefect import it).
    script = textwrap.dedent(
        f"""
        import sys
        from provision.targets import local_tokens
        loaded = lambda: [m for m in ("yaml", "modal", "coiled", "dask") if m in sys.modules]
        assert loaded() == [], loaded()
        local_tokens.modal_token({{"HOME": {str(tmp_path)!r}}})
        local_tokens.coiled_token({{"HOME": {str(tmp_path)!r}, "DASK_COILED__TOKEN": "t"}})
        assert loaded() == [], loaded()
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
