"""The ``provision`` command: parse, call ``provision.service``, render. Nothing else.

Heavy imports (pulumi, cloud SDKs, pydantic models, httpx) happen inside the commands, so that
``provision --help`` stays fast.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from provision import registry
from provision.errors import InvalidInputError, ProvisionError

DISTRIBUTION = "prefect-provision"  # the name on PyPI; `provision` there is another project


class _Group(TyperGroup):
    """The command group, with usage errors (a missing argument, an unknown or empty option)
    as one line on stderr naming the ``--help`` to read, exit 2, for every command at once.

    Typer would print them as a boxed usage block; parsing happens in ``make_context`` (the
    group's own options) and ``invoke`` (the command's), so both are wrapped.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_usage_errors(ctx):
            return super().invoke(ctx)


# Click's UsageError, from wherever this typer takes click (recent ones vendor it).
_UsageError: type[Exception] = typer.BadParameter.__base__  # type: ignore[assignment]


@contextmanager
def _one_line_usage_errors(group: Any = None) -> Iterator[None]:
    try:
        yield
    except _UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise  # bare `provision`: the help, as before
        message = " ".join(exc.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            where = ctx.command_path
        elif group is not None:  # some parser errors carry no context: the command being parsed
            where = " ".join(filter(None, (group.command_path, group.invoked_subcommand)))
        else:
            where = "provision"
        typer.echo(f"Error: {message} (see `{where} --help`)", err=True)
        raise typer.Exit(2) from None


app = typer.Typer(
    name="provision",
    cls=_Group,
    help="Provision the cloud side of Prefect work pools as Pulumi stacks, then register them "
    "in Prefect.",
    no_args_is_help=True,
    add_completion=False,
    # Locals may hold keys and passphrases: never print them in a traceback.
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)

# -- shared options -----------------------------------------------------------------------


def _not_blank(value: Any) -> Any:
    """Refuse an empty string flag: unset is how to ask for the default, never ``""``."""
    for item in value if isinstance(value, list | tuple) else [value]:
        if isinstance(item, str) and not item.strip():
            raise typer.BadParameter("must not be empty")
    return value


Pool = Annotated[str, typer.Argument(help="Work pool name (also the stack name).")]
FilePool = Annotated[
    str | None,
    typer.Argument(
        help="Work pool name (also the stack name); omit it with -f FILE, or to use "
        "./provision.toml.",
        show_default=False,
    ),
]
PoolsFileOpt = Annotated[
    str | None,
    typer.Option(
        "--file",
        "-f",
        help="Pools file: every pool it declares (see `provision schema`).",
        rich_help_panel="Pools file",
        callback=_not_blank,
    ),
]
Parallel = Annotated[
    int,
    typer.Option(
        "--parallel", help="Pools planned or applied at once.", rich_help_panel="Pools file", min=1
    ),
]
PoolType = Annotated[
    str | None,
    typer.Option(
        "--type",
        "-t",
        help="Work pool type (see `provision types`). New pools only.",
        callback=_not_blank,
    ),
]


def _flag(panel: str, help: str, *decls: str, kind: Any = str, **extra: Any) -> Any:
    """An optional flag in ``panel``: unset is ``None``, so saved options and defaults apply.
    An empty string is a usage error naming the flag (it would read as unset)."""
    option = typer.Option(*decls, help=help, rich_help_panel=panel, callback=_not_blank, **extra)
    return Annotated[kind | None, option]


BlockName = _flag("Prefect", "Credentials block name (default: <pool>-<cloud>-credentials).")
PrefectUrl = _flag(
    "Prefect",
    "Prefect API URL (default: PREFECT_API_URL or the active Prefect profile).",
    "--prefect-api-url",
)
PrefectKey = _flag(
    "Prefect",
    "Prefect Cloud API key (default: PREFECT_API_KEY or the active profile).",
    "--prefect-api-key",
    show_default=False,
)
BackendUrl = _flag(
    "Pulumi",
    "Pulumi state backend (default: PULUMI_BACKEND_URL, else a local file backend under "
    "PROVISION_HOME).",
)
SecretsProvider = _flag(
    "Pulumi",
    "Pulumi secrets provider: passphrase (default), awskms://, gcpkms://, azurekeyvault://, "
    "hashivault://.",
)
ImageNamespace = Annotated[
    bool | None,
    typer.Option(
        "--set-image-namespace/--unset-image-namespace",
        help="Set PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE in the active Prefect profile to the "
        "pool's registry, as Prefect's provisioners do (destroy puts the old value back); "
        "saved with the pool.",
        rich_help_panel="Prefect",
        show_default=False,
    ),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Skip the confirmation.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show the engine's full output on errors.")
]


_KINDS: dict[str, Any] = {"str": str, "int": int, "bool": bool, "list": list[str]}


def _target_flags() -> dict[str, Any]:
    """Every target's flags from the registry, by option key, as typer annotations.

    A key two targets share is one flag in a panel naming both (``--region``: GCP and AWS).
    """
    flags: dict[str, Any] = {}
    for key, declared in registry.all_flags().items():
        first = declared[0][1]
        panel = first.panel or " and ".join(label for label, _ in declared)
        text = " ".join(dict.fromkeys(f.help for _, f in declared))
        extra = {"show_default": False} if first.kind == "bool" else {}
        flags[key] = _flag(panel, text, *first.decls, kind=_KINDS[first.kind], **extra)
    return flags


TARGET_FLAGS = _target_flags()


def with_cloud_flags(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command every target's flags; it receives the ones given as a ``cloud`` dict.

    Typer reads a command's signature, so the flags are added to it here from the registry,
    instead of being declared on each command.
    """
    # eval_str: this module's annotations are strings (postponed evaluation), and typer reads
    # its Option() metadata from the signature we build.
    sig = inspect.signature(fn, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "cloud"]
    at = next(i for i, p in enumerate(params) if p.name == "block_name")
    flags = [
        inspect.Parameter(
            name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=annotation
        )
        for name, annotation in TARGET_FLAGS.items()
    ]

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        given = {k: kwargs.pop(k) for k in TARGET_FLAGS}
        cloud = {k: v for k, v in given.items() if v not in (None, [], ())}
        return fn(*args, cloud=cloud, **kwargs)

    command.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[*params[:at], *flags, *params[at:]]
    )
    return command


# -- the error boundary -------------------------------------------------------------------


@contextmanager
def _boundary(verbose: bool = False) -> Iterator[None]:
    """Turn domain errors into one line on stderr and an exit code; tracebacks only on bugs."""
    try:
        yield
    except ProvisionError as exc:
        typer.echo(f"Error: {exc}", err=True)
        if verbose and exc.details:
            typer.echo(exc.details, err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo(
            "Interrupted. Run the same command again to finish: the stack recorded what was done.",
            err=True,
        )
        raise typer.Exit(130) from None


def _require_interactive(yes: bool, action: str) -> None:
    if yes:
        return
    if os.environ.get("CI") or not sys.stdin.isatty():
        raise InvalidInputError(
            f"Refusing to {action} without confirmation in a non-interactive session: pass --yes."
        )


def _settings(backend_url: str | None = None, secrets_provider: str | None = None) -> Any:
    from provision.settings import load_settings

    return load_settings(backend_url=backend_url, secrets_provider=secrets_provider)


def _request(
    pool: str,
    pool_type: str | None,
    cloud: dict[str, Any],
    block_name: str | None,
    prefect_api_url: str | None,
    prefect_api_key: str | None,
    set_image_namespace: bool | None = None,
) -> Any:
    from provision.service import PoolRequest

    return PoolRequest(
        pool=pool,
        type=pool_type,
        options=cloud,
        block_name=block_name,
        prefect_api_url=prefect_api_url,
        prefect_api_key=prefect_api_key,
        set_image_namespace=set_image_namespace,
    )


def _pools_file(pool: str | None, file: str | None, **per_pool: Any) -> str | None:
    """The pools file to use, or ``None`` for the one pool named.

    ``-f FILE`` and a pool name exclude each other; with neither, ``./provision.toml``. A
    flag that configures one pool (``--type``, a cloud option) belongs in the file then.
    """
    from provision.pools_file import DEFAULT_FILE

    if pool is not None and file is not None:
        raise InvalidInputError(f"Pass a pool name or -f {file}, not both.")
    if pool is not None:
        return None
    file = file or DEFAULT_FILE
    if file == DEFAULT_FILE and not os.path.exists(file):
        raise InvalidInputError(
            f"No pool named and no {DEFAULT_FILE} here: pass POOL, or -f FILE (see `provision "
            "schema`)."
        )
    for name, value in per_pool.items():
        if value not in (None, False, {}, [], ()):
            flag = "a cloud option" if name == "cloud" else "--" + name.replace("_", "-")
            raise InvalidInputError(
                f"With a pools file, {flag} goes in the file, per pool: {flag} applies to one pool."
            )
    return file


def _file_exit(results: list[Any]) -> None:
    """Exit with the worst code among the pools' failures (``1`` unless all were input)."""
    codes = [r.exit_code for r in results if r.error is not None]
    if codes:
        raise typer.Exit(max(codes) if all(c == 2 for c in codes) else 1)


def _live_hooks(progress: Any, console: Any, verb: str, yes: bool) -> Any:
    """The hooks of a command that changes a pool: the live progress display, and the plan
    and its question (``verb``) unless ``--yes``."""
    from cli import render
    from provision import service

    return service.Hooks(
        confirm=None if yes else progress.paused(render.confirm_plan(console, verb)),
        on_progress=progress.update,
        on_notice=progress.notice,
        on_install=render.install_spinner(console),
        on_phase=progress.phase,
    )


# -- commands -----------------------------------------------------------------------------


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        typer.echo(f"{DISTRIBUTION} {version(DISTRIBUTION)}")
    except PackageNotFoundError:
        typer.echo(f"{DISTRIBUTION} (not installed: run from a source tree)")
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the installed version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    # No docstring: typer would show it instead of the app's help.
    pass


@app.command()
@with_cloud_flags
def up(
    pool: FilePool = None,
    type_: PoolType = None,
    *,
    cloud: dict[str, Any],
    block_name: BlockName = None,
    prefect_api_url: PrefectUrl = None,
    prefect_api_key: PrefectKey = None,
    backend_url: BackendUrl = None,
    secrets_provider: SecretsProvider = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Read the cloud's actual state first (repairs drift).")
    ] = False,
    set_image_namespace: ImageNamespace = None,
    file: PoolsFileOpt = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Also destroy the pools the backend has and the file does not declare.",
            rich_help_panel="Pools file",
        ),
    ] = False,
    parallel: Parallel = 4,
    yes: Yes = False,
    verbose: Verbose = False,
) -> None:
    """Create or update a pool's cloud resources, then its Prefect block and work pool (with
    -f, every pool of a pools file)."""
    from cli import render

    with _boundary(verbose):
        _require_interactive(yes, "provision")
        pools_file = _pools_file(
            pool,
            file,
            type=type_,
            cloud=cloud,
            block_name=block_name,
            set_image_namespace=set_image_namespace,
        )
        if pools_file is not None:
            _up_file(
                pools_file,
                prefect_api_url,
                prefect_api_key,
                backend_url,
                secrets_provider,
                refresh=refresh,
                prune=prune,
                parallel=parallel,
                yes=yes,
            )
            return
        if prune:
            raise InvalidInputError("--prune applies to a pools file: use -f FILE.")
        assert pool is not None
        request = _request(
            pool,
            type_,
            cloud,
            block_name,
            prefect_api_url,
            prefect_api_key,
            set_image_namespace,
        )
        from provision import service

        settings = _settings(backend_url, secrets_provider)
        console = render.console()
        with render.Progress(console) as progress:
            hooks = _live_hooks(progress, console, "Apply", yes)
            outcome = service.up(request, settings, hooks, refresh=refresh)
        render.summary(console, outcome)


@app.command()
@with_cloud_flags
def preview(
    pool: FilePool = None,
    type_: PoolType = None,
    *,
    cloud: dict[str, Any],
    block_name: BlockName = None,
    prefect_api_url: PrefectUrl = None,
    prefect_api_key: PrefectKey = None,
    backend_url: BackendUrl = None,
    secrets_provider: SecretsProvider = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Plan under Pulumi mocks: no pulumi CLI, credentials or Prefect."
        ),
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Read the cloud's actual state first (drift check).")
    ] = False,
    expect_no_changes: Annotated[
        bool, typer.Option("--expect-no-changes", help="Exit 3 if the plan has changes.")
    ] = False,
    set_image_namespace: ImageNamespace = None,
    rotate_: Annotated[
        bool,
        typer.Option("--rotate", help="Plan the credential's rotation (what `rotate` would do)."),
    ] = False,
    file: PoolsFileOpt = None,
    parallel: Parallel = 4,
    json_: Json = False,
    verbose: Verbose = False,
) -> None:
    """Show what `up` would change (with -f, for every pool of a pools file). Changes nothing."""
    with _boundary(verbose):
        pools_file = _pools_file(
            pool,
            file,
            type=type_,
            cloud=cloud,
            block_name=block_name,
            set_image_namespace=set_image_namespace,
            rotate=rotate_,
            offline=offline,
        )
        if pools_file is not None:
            from cli import render
            from provision import api
            from provision.service import PoolRequest

            plans = api.preview(
                pools_file,
                parallel=parallel,
                refresh=refresh,
                prefect=PoolRequest(
                    "", prefect_api_url=prefect_api_url, prefect_api_key=prefect_api_key
                ),
                settings=_settings(backend_url, secrets_provider),
            )
            if json_:
                render.print_json(plans.to_json())
            else:
                render.plan_set(render.console(), plans)
            _file_exit(plans.pools)
            if expect_no_changes and plans.has_changes:
                raise typer.Exit(3)
            return
        assert pool is not None
        request = dataclasses.replace(
            _request(
                pool,
                type_,
                cloud,
                block_name,
                prefect_api_url,
                prefect_api_key,
                set_image_namespace,
            ),
            rotate=rotate_,
        )
        if offline and rotate_:
            raise InvalidInputError(
                "--rotate needs the pool's stack and cannot be used with --offline."
            )
        if offline and refresh:
            raise InvalidInputError("--refresh reads the cloud and cannot be used with --offline.")
        from provision import service

        if offline:
            settings = _settings(backend_url, secrets_provider)
            the_plan = service.plan_offline(request, settings)
        else:
            from cli import render

            settings = _settings(backend_url, secrets_provider)
            hooks = service.Hooks(
                on_install=render.install_spinner(render.console(stderr=True)),
                on_notice=lambda m: typer.echo(m, err=True),
            )
            the_plan = service.plan(request, settings, hooks, refresh=refresh)
        if json_:
            # Not even imported then: the offline JSON plan (CI's first call) needs no rich.
            typer.echo(the_plan.model_dump_json(indent=2))
        else:
            from cli import render

            render.plan(render.console(), the_plan)
        if expect_no_changes and the_plan.has_changes:
            raise typer.Exit(3)


@app.command()
def destroy(
    pool: FilePool = None,
    prefect_api_url: PrefectUrl = None,
    prefect_api_key: PrefectKey = None,
    backend_url: BackendUrl = None,
    secrets_provider: SecretsProvider = None,
    file: PoolsFileOpt = None,
    parallel: Parallel = 4,
    yes: Yes = False,
    verbose: Verbose = False,
) -> None:
    """Delete a pool's cloud resources, the Prefect objects the tool created, and its stack
    (with -f, every pool a pools file declares)."""
    from cli import render

    with _boundary(verbose):
        _require_interactive(yes, "destroy")
        from provision import service

        pools_file = _pools_file(pool, file)
        if pools_file is not None:
            from provision import api

            console = render.console()
            done = api.destroy(
                pools_file,
                parallel=parallel,
                confirm=None if yes else render.confirm_destroy_set(console),
                prefect=service.PoolRequest(
                    "", prefect_api_url=prefect_api_url, prefect_api_key=prefect_api_key
                ),
                settings=_settings(backend_url, secrets_provider),
            )
            render.apply_set(console, done)
            _file_exit(done.pools)
            return
        assert pool is not None

        settings = _settings(backend_url, secrets_provider)
        console = render.console()
        with render.Progress(console) as progress:
            hooks = _live_hooks(progress, console, "Destroy", yes)
            service.destroy(
                pool,
                settings,
                hooks,
                prefect_api_url=prefect_api_url,
                prefect_api_key=prefect_api_key,
            )
        console.print(f"Destroyed '{pool}': cloud resources, Prefect objects and stack removed.")


def _up_file(
    file: str,
    prefect_api_url: str | None,
    prefect_api_key: str | None,
    backend_url: str | None,
    secrets_provider: str | None,
    *,
    refresh: bool,
    prune: bool,
    parallel: int,
    yes: bool,
) -> None:
    """``up -f``: one combined plan, one question, the pools applied in parallel."""
    from cli import render
    from provision import api
    from provision.service import PoolRequest

    console = render.console()
    done = api.up(
        file,
        parallel=parallel,
        prune=prune,
        refresh=refresh,
        confirm=None if yes else render.confirm_plan_set(console),
        prefect=PoolRequest("", prefect_api_url=prefect_api_url, prefect_api_key=prefect_api_key),
        settings=_settings(backend_url, secrets_provider),
    )
    if yes and done.plans is not None:
        render.plan_set(console, done.plans)
    render.apply_set(console, done)
    _file_exit(done.pools)


@app.command()
def rotate(
    pool: Pool,
    prefect_api_url: PrefectUrl = None,
    prefect_api_key: PrefectKey = None,
    backend_url: BackendUrl = None,
    secrets_provider: SecretsProvider = None,
    yes: Yes = False,
    json_: Annotated[
        bool, typer.Option("--json", help="The plan applied, as `preview --json`, on stdout.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Replace a pool's credential: the new one is made and written to the block before the old
    one is deleted, so the block never holds a dead credential."""
    from cli import render

    with _boundary(verbose):
        _require_interactive(yes, "rotate")
        request = _request(pool, None, {}, None, prefect_api_url, prefect_api_key)
        from provision import service

        settings = _settings(backend_url, secrets_provider)
        console = render.console(stderr=json_)
        with render.Progress(console) as progress:
            hooks = _live_hooks(progress, console, "Rotate", yes)
            try:
                outcome = service.rotate(request, settings, hooks)
            except service.NothingToRotate as nothing:
                console.print(str(nothing), markup=False)
                return
        render.summary(console, outcome)
        if json_:
            typer.echo(outcome.plan.model_dump_json(indent=2))


@app.command("list")
def list_(backend_url: BackendUrl = None, json_: Json = False, verbose: Verbose = False) -> None:
    """Every provisioned pool with its type, location and last result."""
    from cli import render

    with _boundary(verbose):
        from provision import service

        rows = service.list_pools(_settings(backend_url))
        if json_:
            render.print_json([dataclasses.asdict(r) for r in rows])
        else:
            render.pools_table(render.console(), rows)


@app.command()
def show(
    pool: Pool, backend_url: BackendUrl = None, json_: Json = False, verbose: Verbose = False
) -> None:
    """A pool's outputs (secrets masked) and its Prefect block and work pool ids."""
    from cli import render

    with _boundary(verbose):
        from provision import service

        details = service.show(pool, _settings(backend_url))
        if json_:
            render.print_json(render.details_dict(details))
        else:
            render.details(render.console(), details)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the pools file (provision.toml), for editors and CI."""
    import json

    from provision.pools_schema import schema as pools_schema

    typer.echo(json.dumps(pools_schema(), indent=2))


@app.command()
def types(json_: Json = False) -> None:
    """The work pool types this tool provisions."""
    from cli import render
    from provision.registry import POOL_TYPES

    if json_:
        render.print_json(
            [
                {
                    "type": p.name,
                    "cloud": p.target,
                    "push": p.push,
                    "prefect_cloud_only": p.prefect_cloud_only,
                    "worker_type": p.worker_type,
                    "description": p.description,
                }
                for p in POOL_TYPES.values()
            ]
        )
    else:
        render.types_table(render.console(), list(POOL_TYPES.values()))


@app.command()
def unlock(
    pool: Pool,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Remove every lock, not only stale ones (a dead process on this host, or "
            "older than any run).",
        ),
    ] = False,
    backend_url: BackendUrl = None,
) -> None:
    """Clear a lock left by a killed run (file, S3, GCS or Azure Blob backends)."""
    with _boundary():
        from provision import service

        outcome = service.unlock(pool, _settings(backend_url), force=force)
        for holder in outcome.cleared:
            typer.echo(f"Removed the lock of {holder} on '{pool}'.")
        for holder in outcome.live:
            typer.echo(
                f"'{pool}' is locked by {holder}, a run that may still be going: wait for it, "
                "or pass --force if it is dead."
            )
        if not outcome.cleared and not outcome.live:
            typer.echo(f"No lock on '{pool}'.")


def main() -> NoReturn:
    """Console-script entry point.

    Once the command is over, the process ends without tearing the interpreter down: the exit
    handlers run (scratch dirs removed, logs flushed) and the output is flushed, but freeing
    every loaded module one by one (~0.15 s with a cloud SDK loaded, after the last line is
    printed) is skipped. By then only the main thread is left: the engine's servers are
    stopped and the preload threads are daemons.

    The cyclic collector is paused while the command loads its code (``cli/collector.py``),
    optional parts of third-party packages the tool never uses are left out, parts of the
    pulumi SDK a command may not use are loaded only if it does, and the provider SDKs' modules
    are compiled with their annotations postponed (``cli/extras.py``).
    """
    from cli import collector, extras

    collector.pause()
    extras.leave_out()
    extras.defer()
    extras.postpone_sdk_annotations()
    try:
        app()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if sys.getprofile() is not None or sys.gettrace() is not None:
        # A profiler, debugger or coverage tool writes its results after this returns.
        raise SystemExit(code)
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what the interpreter does with a non-int exit code
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to write to
            stream.flush()
    os._exit(code or 0)
