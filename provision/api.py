"""The Python API: ``preview``, ``up`` and ``destroy`` of one pool, a list of pools or a pools
file, with typed requests and results. The CLI is a thin layer on it; it imports neither typer
nor rich.

```python
import provision

plans = provision.preview("provision.toml")          # every pool of the file, in parallel
if plans.has_changes:
    done = provision.up("provision.toml", prune=True)  # apply; destroy pools not in the file
    assert done.ok, [p.error for p in done.failed]

provision.up(provision.PoolRequest("etl", type="cloud-run-v2", options={"project": "p-123"}))
```

Pools are planned and applied in parallel (``parallel``, default 4); one pool's failure never
stops the others, and each result says what happened to its pool. Every file or option problem
is found before anything is touched (``InvalidInputError``, one line naming the file and line).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from provision import service
from provision.errors import InvalidInputError, ProvisionError
from provision.plan import Plan
from provision.pools_file import PoolsFile, load
from provision.service import PoolRequest, Runtime, UpOutcome
from provision.settings import Settings, load_settings

Pools = str | Path | PoolsFile | PoolRequest | Sequence[PoolRequest]
"""What the functions take: a pools file (its path, or loaded), one request, or several."""

DEFAULT_PARALLEL = 4


@dataclass(frozen=True)
class PoolPlan:
    """One pool's plan, or why it could not be planned."""

    pool: str
    plan: Plan | None = None
    error: str | None = None
    exit_code: int = 0
    """The exit code the error maps to (``2`` invalid input, ``1`` any other failure)."""
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanSet:
    """Every pool's plan, and the pools the backend has that a file does not declare."""

    pools: list[PoolPlan]
    not_in_file: list[str] = field(default_factory=list)
    """Pools in the backend but not in the file: never touched unless pruned."""
    prune: bool = False
    """``up --prune``: the pools not in the file are destroyed."""

    @property
    def has_changes(self) -> bool:
        """Any pool would change, or would be pruned."""
        return any(p.plan is not None and p.plan.has_changes for p in self.pools) or (
            self.prune and bool(self.not_in_file)
        )

    @property
    def failed(self) -> list[PoolPlan]:
        """The pools that could not be planned."""
        return [p for p in self.pools if p.error is not None]

    def summary(self) -> dict[str, Any]:
        """Counts for the table's last line and ``--json``."""
        planned = [p.plan for p in self.pools if p.plan is not None]
        return {
            "pools": len(self.pools),
            "changing": sum(1 for p in planned if p.has_changes),
            "unchanged": sum(1 for p in planned if not p.has_changes),
            "failed": len(self.failed),
            "not_in_file": len(self.not_in_file),
            "to_prune": len(self.not_in_file) if self.prune else 0,
        }

    def to_json(self) -> dict[str, Any]:
        """``preview -f --json``: each pool's plan contract (or error), and the summary."""
        return {
            "pools": [
                p.plan.model_dump(mode="json")
                if p.plan is not None
                else {"pool": p.pool, "error": p.error, "exit_code": p.exit_code}
                for p in self.pools
            ],
            "not_in_file": list(self.not_in_file),
            "summary": self.summary(),
        }


@dataclass(frozen=True)
class PoolApplied:
    """What ``up`` or ``destroy`` did to one pool."""

    pool: str
    action: str
    """``up``, ``destroy`` (a pruned pool too) or ``skip`` (no change planned)."""
    outcome: UpOutcome | None = None
    error: str | None = None
    exit_code: int = 0


@dataclass(frozen=True)
class ApplySet:
    """Every pool's result."""

    pools: list[PoolApplied]
    plans: PlanSet | None = None

    @property
    def ok(self) -> bool:
        """Every pool converged."""
        return not self.failed

    @property
    def failed(self) -> list[PoolApplied]:
        """The pools that did not."""
        return [p for p in self.pools if p.error is not None]


# -- the functions ----------------------------------------------------------------------------


def preview(
    pools: Pools,
    *,
    parallel: int = DEFAULT_PARALLEL,
    refresh: bool = False,
    prefect: PoolRequest | None = None,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
    runtime: Runtime | None = None,
) -> PlanSet:
    """Plan every pool in parallel against the backend; nothing is changed.

    ``prefect``: a request whose ``prefect_api_url``/``prefect_api_key`` every pool uses (the
    CLI's flags); else each pool's own, or the environment's.
    """
    env = os.environ if env is None else env
    settings = settings or load_settings(env=env)
    requests, source = _requests(pools, settings, env, prefect)
    return _plan_all(requests, source, parallel, refresh, settings, env, runtime)


def _plan_all(
    requests: Sequence[PoolRequest],
    source: PoolsFile | None,
    parallel: int,
    refresh: bool,
    settings: Settings,
    env: Mapping[str, str],
    runtime: Runtime | None,
) -> PlanSet:
    """The plans of requests already checked by :func:`_requests`."""
    plans = _each(
        requests,
        parallel,
        lambda r, hooks: service.plan(
            r, settings, hooks, refresh=refresh, env=env, runtime=runtime
        ),
    )
    results = [
        PoolPlan(r.pool, plan=value, notices=notices)
        if error is None
        else PoolPlan(r.pool, error=error.message_line, exit_code=error.exit_code, notices=notices)
        for r, (value, error, notices) in zip(requests, plans, strict=True)
    ]
    return PlanSet(results, _not_in_file(source, settings, runtime))


def up(
    pools: Pools,
    *,
    parallel: int = DEFAULT_PARALLEL,
    prune: bool = False,
    refresh: bool = False,
    confirm: Callable[[PlanSet], bool] | None = None,
    prefect: PoolRequest | None = None,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
    runtime: Runtime | None = None,
) -> ApplySet:
    """Plan every pool, ask ``confirm`` once (``None``: approved), then apply in parallel.

    A pool whose plan has no change is not applied again; a pool that could not be planned is
    reported failed and not applied. ``prune`` destroys the backend's pools a file does not
    declare (listed in the plan first). Raises ``service.Cancelled`` when ``confirm`` says no.
    """
    env = os.environ if env is None else env
    settings = settings or load_settings(env=env)
    # Read and checked once: the file, each pool's options and the programs' modules.
    requests, source = _requests(pools, settings, env, prefect)
    plans = _plan_all(requests, source, parallel, refresh, settings, env, runtime)
    prefect = prefect or PoolRequest("")
    plans = replace(plans, prune=prune)
    if confirm is not None and not confirm(plans):
        raise service.Cancelled("Cancelled: nothing was changed.")
    by_name = {r.pool: r for r in requests}
    work: list[tuple[str, PoolRequest | None]] = []
    skipped: list[PoolApplied] = []
    for p in plans.pools:
        if p.error is not None:
            skipped.append(PoolApplied(p.pool, "up", error=p.error, exit_code=p.exit_code))
        elif p.plan is not None and not p.plan.has_changes:
            skipped.append(PoolApplied(p.pool, "skip"))
        else:
            work.append(("up", by_name[p.pool]))
    if prune:
        work += [("destroy", replace(prefect, pool=name)) for name in plans.not_in_file]

    def apply(item: tuple[str, PoolRequest | None], hooks: service.Hooks) -> UpOutcome | None:
        action, request = item
        assert request is not None
        if action == "up":
            return service.up(request, settings, hooks, env, refresh=refresh, runtime=runtime)
        service.destroy(
            request.pool,
            settings,
            hooks,
            prefect_api_url=request.prefect_api_url,
            prefect_api_key=request.prefect_api_key,
            env=env,
            runtime=runtime,
        )
        return None

    done = _each(work, parallel, apply)
    applied = [
        PoolApplied(request.pool, action, outcome=value)  # type: ignore[union-attr]
        if error is None
        else PoolApplied(
            request.pool,  # type: ignore[union-attr]
            action,
            error=error.message_line,
            exit_code=error.exit_code,
        )
        for (action, request), (value, error, _) in zip(work, done, strict=True)
    ]
    order = {name: i for i, name in enumerate([p.pool for p in plans.pools] + plans.not_in_file)}
    results = sorted([*skipped, *applied], key=lambda a: order.get(a.pool, len(order)))
    return ApplySet(results, plans)


def destroy(
    pools: Pools,
    *,
    parallel: int = DEFAULT_PARALLEL,
    confirm: Callable[[list[str]], bool] | None = None,
    prefect: PoolRequest | None = None,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
    runtime: Runtime | None = None,
) -> ApplySet:
    """Destroy every pool (of a file: the ones it declares), in parallel, after ``confirm``
    is asked once with their names. A pool the backend does not have is reported, not an error
    of the others."""
    env = os.environ if env is None else env
    settings = settings or load_settings(env=env)
    requests, _ = _requests(pools, settings, env, prefect)
    if confirm is not None and not confirm([r.pool for r in requests]):
        raise service.Cancelled("Cancelled: nothing was changed.")

    def run(request: PoolRequest, hooks: service.Hooks) -> None:
        service.destroy(
            request.pool,
            settings,
            hooks,
            prefect_api_url=request.prefect_api_url,
            prefect_api_key=request.prefect_api_key,
            env=env,
            runtime=runtime,
        )

    done = _each(requests, parallel, run)
    return ApplySet(
        [
            PoolApplied(r.pool, "destroy")
            if error is None
            else PoolApplied(r.pool, "destroy", error=error.message_line, exit_code=error.exit_code)
            for r, (_, error, _) in zip(requests, done, strict=True)
        ]
    )


# -- helpers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    message_line: str
    exit_code: int


def _requests(
    pools: Pools,
    settings: Settings,
    env: Mapping[str, str],
    prefect: PoolRequest | None = None,
) -> tuple[list[PoolRequest], PoolsFile | None]:
    """The requests ``pools`` stands for, each checked as the flags would be (no cloud or
    Prefect call, nothing written); a file's problems name its file and line."""
    source: PoolsFile | None = None
    if isinstance(pools, str | Path):
        source = load(pools)
    elif isinstance(pools, PoolsFile):
        source = pools
    if source is not None:
        requests = [
            PoolRequest(
                e.name,
                type=e.type,
                options=dict(e.options),
                block_name=e.block_name,
                set_image_namespace=e.set_image_namespace,
            )
            for e in source.pools
        ]
    elif isinstance(pools, PoolRequest):
        requests = [pools]
    else:
        requests = list(pools)
    if prefect is not None and (prefect.prefect_api_url or prefect.prefect_api_key):
        requests = [
            replace(
                r,
                prefect_api_url=prefect.prefect_api_url or r.prefect_api_url,
                prefect_api_key=prefect.prefect_api_key or r.prefect_api_key,
            )
            for r in requests
        ]
    names = [r.pool for r in requests]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InvalidInputError(f"Pool '{duplicate}' is given twice.")
    specs = []
    for request in requests:
        if request.type is None:
            continue  # an existing pool: its record is checked when it is read
        try:
            specs.append(service.resolve(request, settings, env))
        except InvalidInputError as exc:
            if source is None:
                raise
            raise InvalidInputError(source.where(request.pool, str(exc))) from None
    if len(requests) > 1:
        _load_programs(specs, env)
    return requests, source


def _load_programs(specs: Sequence[service.PoolSpec], env: Mapping[str, str]) -> None:
    """Run each kind of program once under mocks, here, before the pools run in parallel.

    The pulumi SDKs load their submodules lazily (``importlib.util.LazyLoader``), which is not
    thread-safe before Python 3.12: two pools' programs touching ``pulumi_gcp.artifactregistry``
    at once can see it half-loaded ("has no attribute 'Repository'"). A program run under mocks
    loads exactly what it uses; the imports would happen anyway, and the GIL would serialise
    them.
    """
    from provision.offline import offline_steps

    seen: set[tuple[str, bool]] = set()
    for spec in specs:
        kind = (spec.pool_type.target, bool(getattr(spec.options, "with_worker", False)))
        if kind in seen:
            continue
        seen.add(kind)
        spec = service._with_worker(spec, None, env)
        cloud = spec.target.program()
        if cloud is not None:
            offline_steps(spec.pool, cloud, spec.target.worker_program())


def _not_in_file(
    source: PoolsFile | None, settings: Settings, runtime: Runtime | None
) -> list[str]:
    """Pools of the backend a file does not declare (``[]`` when not given a file)."""
    if source is None:
        return []
    declared = set(source.names())
    engine = (runtime or Runtime()).engine(settings, service.Hooks())
    return sorted(info.name for info in engine.list_stacks() if info.name not in declared)


def _each(
    items: Sequence[Any], parallel: int, fn: Callable[[Any, service.Hooks], Any]
) -> list[tuple[Any, _Failure | None, tuple[str, ...]]]:
    """``fn`` over ``items`` on at most ``parallel`` threads: each result, or its failure as
    one line (a pool's failure never stops the others), and the notices it sent."""
    if parallel < 1:
        raise InvalidInputError(f"Invalid --parallel {parallel}: at least 1.")

    def one(item: Any) -> tuple[Any, _Failure | None, tuple[str, ...]]:
        notices: list[str] = []
        hooks = service.Hooks(on_notice=notices.append)
        try:
            return fn(item, hooks), None, tuple(notices)
        except ProvisionError as exc:
            return None, _Failure(str(exc), exc.exit_code), tuple(notices)
        except Exception as exc:  # a bug in one pool's run must not hide the others' results
            return None, _Failure(f"{type(exc).__name__}: {exc}", 1), tuple(notices)

    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(parallel, len(items))) as pool:
        return list(pool.map(one, items))
