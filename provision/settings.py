"""Where the tool keeps its state, which backend and secrets provider it uses.

Resolved once per command from flags and the environment, without writing anything:
``Settings.prepare()`` creates the local backend directory, and
``create_passphrase()`` the passphrase file for a new stack; the engine calls them only once
validation is over.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from provision.errors import InvalidInputError

PROJECT_NAME = "provision"
"""The Pulumi project every pool stack belongs to (so ``list`` sees them all)."""

_SECRETS_SCHEMES = ("awskms://", "gcpkms://", "azurekeyvault://", "hashivault://", "passphrase")
_BACKEND_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "https://", "http://", "postgres://")


@dataclass(frozen=True)
class Settings:
    """Everything the engine needs to know about *where*, independent of any cloud."""

    home: Path
    backend_url: str
    secrets_provider: str | None
    engine_env: Mapping[str, str] = field(repr=False)
    """Extra environment for every pulumi CLI call (passphrase variables live here)."""
    passphrase_file: Path | None = None
    """The generated passphrase file, when neither a passphrase nor a KMS provider is given."""
    pulumi_root: Path | None = None
    """``PROVISION_PULUMI_ROOT``: a directory holding ``bin/pulumi``."""
    cache_dir: Path | None = None
    """What this machine may remember between commands, none of it state (the pulumi CLI's
    version, the provider SDKs' compiled modules): ``PROVISION_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/provision``, else ``~/.cache/provision``. Never under ``PROVISION_HOME``,
    which read-only commands leave untouched."""

    def prepare(self) -> None:
        """Create the local backend directory if missing (nothing else: a machine that only
        operates pools of a shared backend keeps no PROVISION_HOME at all)."""
        if self.local_backend_path is not None:
            self.local_backend_path.mkdir(parents=True, exist_ok=True)

    def create_passphrase(self) -> Path | None:
        """Generate the passphrase file if this machine uses one and has none yet.

        Only for a stack being created: an existing stack's secrets need the passphrase they
        were encrypted with, and a fresh one would only fail later. Returns the file's path if
        this call generated it (announce it once).
        """
        if self.passphrase_file is not None and not self.passphrase_file.exists():
            return _create_passphrase_file(self.passphrase_file)
        return None

    def for_stack(self, secrets_type: str | None, secrets_url: str | None) -> Settings:
        """These settings for an existing stack whose state names its secrets manager.

        A stack made with a KMS/Vault provider keeps using it from any machine: the generated
        passphrase file is not offered to it (the CLI would pick the passphrase up instead).
        """
        if secrets_type in (None, "passphrase") or self.secrets_provider:
            return self
        env = {k: v for k, v in self.engine_env.items() if k != "PULUMI_CONFIG_PASSPHRASE_FILE"}
        return replace(
            self, engine_env=env, passphrase_file=None, secrets_provider=secrets_url or None
        )

    def legacy_work_dir(self, pool: str) -> Path:
        """Where versions before the record moved into the backend kept a pool's work dir
        (read once, to migrate it; runs now use a throwaway work dir)."""
        return self.home / "stacks" / pool

    def throwaway(self, root: Path) -> Settings:
        """Settings for plans of pools that do not exist yet: a local backend under ``root``
        and a one-off passphrase, so a preview or a declined confirmation writes nothing to the
        real backend or to ``PROVISION_HOME``."""
        import secrets  # only here and for a new passphrase file: `--help` loads this module

        return replace(
            self,
            home=root,
            backend_url=f"file://{root / 'state'}",
            secrets_provider=None,
            engine_env={
                **{k: v for k, v in self.engine_env.items() if "PASSPHRASE" not in k},
                "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(16),
                "PULUMI_CONFIG_PASSPHRASE_FILE": "",
            },
            passphrase_file=None,
        )

    @property
    def is_local_backend(self) -> bool:
        """True for the ``file://`` backend, whose lock files we can inspect."""
        return self.backend_url.startswith("file://")

    @property
    def local_backend_path(self) -> Path | None:
        """Filesystem root of a ``file://`` backend."""
        if not self.is_local_backend:
            return None
        return Path(self.backend_url.removeprefix("file://")).expanduser()


def load_settings(
    *,
    backend_url: str | None = None,
    secrets_provider: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings from flags, then the environment, then defaults under ``PROVISION_HOME``.

    Writes nothing; see ``Settings.prepare``.
    """
    env = os.environ if env is None else env
    home = Path(env.get("PROVISION_HOME") or Path.home() / ".provision").expanduser()

    url = backend_url or env.get("PULUMI_BACKEND_URL") or f"file://{home / 'state'}"
    if not url.startswith(_BACKEND_SCHEMES):
        raise InvalidInputError(
            f"Unsupported backend URL '{url}': use file://PATH, s3://, gs://, azblob:// "
            "or a Pulumi Cloud https:// URL."
        )
    if secrets_provider and not secrets_provider.startswith(_SECRETS_SCHEMES):
        raise InvalidInputError(
            f"Unsupported secrets provider '{secrets_provider}': use passphrase, awskms://, "
            "gcpkms://, azurekeyvault:// or hashivault://."
        )

    engine_env: dict[str, str] = {}
    passphrase_file: Path | None = None
    uses_passphrase = secrets_provider in (None, "passphrase")
    has_passphrase = "PULUMI_CONFIG_PASSPHRASE" in env or "PULUMI_CONFIG_PASSPHRASE_FILE" in env
    if uses_passphrase and not has_passphrase:
        passphrase_file = home / "passphrase"
        engine_env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(passphrase_file)

    root = env.get("PROVISION_PULUMI_ROOT")
    return Settings(
        home=home,
        backend_url=url,
        secrets_provider=secrets_provider,
        engine_env=engine_env,
        passphrase_file=passphrase_file,
        pulumi_root=Path(root).expanduser() if root else None,
        cache_dir=cache_dir(env),
    )


def cache_dir(env: Mapping[str, str]) -> Path:
    """What this machine may remember between commands (:attr:`Settings.cache_dir`):
    ``PROVISION_CACHE_DIR``, else ``$XDG_CACHE_HOME/provision``, else ``~/.cache/provision``."""
    cache = env.get("PROVISION_CACHE_DIR") or (
        Path(env["XDG_CACHE_HOME"]) / "provision"
        if env.get("XDG_CACHE_HOME")
        else Path.home() / ".cache" / "provision"
    )
    return Path(cache).expanduser()


def _create_passphrase_file(path: Path) -> Path | None:
    import secrets

    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two first runs racing must not end up with two different passphrases.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32))
    return path
