"""Import only the resource modules of a Pulumi provider SDK that a stack uses.

Each service package of a Pulumi provider SDK (``pulumi_aws.ec2``, ``pulumi_gcp.projects``,
``pulumi_azure_native.authorization``) runs ``from .<module> import *`` in its ``__init__`` for
every resource and function of that service: ``pulumi_aws.ec2`` alone is some 180 modules and,
even from bytecode, about 0.4 s, for the seven resources a pool uses. Every stack module
therefore declares, per service, the modules it takes names from, and gets its SDK from
:func:`load`::

    aws = sdk_modules.load("pulumi_aws", "get_caller_identity", ec2=("vpc", "subnet", "_inputs"))
    aws.ec2.Vpc(...)                    # as with ``import pulumi_aws as aws``
    aws.get_caller_identity_output()

A module is the file defining the name: a resource ``Vpc`` and its ``VpcArgs`` in ``vpc``,
nested input types (``SecurityGroupEgressArgs``) in ``_inputs``, enums in ``_enums``, a
function ``get_client_config_output`` in ``get_client_config``. The top-level package's own
modules (``pulumi_aws``'s ``get_caller_identity``, ``pulumi_azuread``'s ``application``) are
named before the services.

What stays as the SDK made it:

- the SDK's top-level package is imported as usual: its ``__init__`` registers the provider
  and every resource module with the Pulumi runtime (what deserialising a resource reference
  needs). Compiled by :mod:`stacks.sdk_bytecode` (the console script), it binds its own
  modules' names (``aws.get_caller_identity_output``) and its services on first use; the
  modules named here are loaded now all the same, so that a stack module imported ahead of its
  program has them;
- the resource classes are the SDK's own, from its own files: their type tokens, input and
  output types are what ``import pulumi_aws`` gives;
- a service package is the module object the SDK put in ``sys.modules`` (its lazy import) or
  would have, so every reference to it sees the same object. Until its ``__init__`` has run it
  holds the names of the modules loaded so far; any other name (one a stack did not declare,
  one the runtime looks up to rehydrate a resource) runs the real ``__init__`` on that same
  object first (:data:`completed` records it), so nothing is ever missing, only slower;
- the imports go through the import system, under its per-module locks: a stack module can be
  imported in a background thread (to have the SDK loaded while the pulumi CLI starts) while
  another thread plans.

To load a stack's SDK modules ahead of its program, import the stack module (:func:`preload`).

The same partial module keeps what ``import pulumi`` loads eagerly and a command may not use
(parts of the SDK itself, and PyYAML) from running until a command uses it
(:func:`defer_pulumi_parts`, called by the console script before anything imports pulumi).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
import types
from collections.abc import Iterable, Mapping

completed: dict[str, str] = {}
"""Service packages whose whole ``__init__`` ran because of a name no stack declared: package →
the name asked for. The tests hold it empty after every type's program."""

_LOCK = threading.RLock()
"""Guards turning a module into a partial package and completing it. Never held while a
stack's declared modules are imported."""


class _PartialPackage(types.ModuleType):
    """A service package whose ``__init__`` has not run (yet)."""

    def __getattr__(self, name: str) -> object:
        # Only called for a name not (yet) in the package.
        if name.startswith("__"):
            # Probes (``__all__`` by a star import, ``__wrapped__`` by inspect, ``__getstate__``
            # by copy) are no reason to load a whole service.
            raise AttributeError(name)
        full = f"{self.__name__}.{name}"
        path = self.__dict__.get("__path__")  # None for a plain module (a deferred part)
        if path is not None and (
            full in sys.modules or importlib.machinery.PathFinder.find_spec(full, path)
        ):
            # A submodule (``from . import outputs`` in a resource module): just that file.
            return importlib.import_module(full)
        _complete(self, name)
        return getattr(self, name)


class _DeferredPart(_PartialPackage):
    """A module that ``import pulumi`` loads and a command may never use
    (:func:`defer_pulumi_parts`): its code runs on the first name asked of it, a ``__dunder__``
    one included (``__all__`` of a star import, ``__version__``: what its code defines is
    what such a name must see)."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            _complete(self, name)
            return object.__getattribute__(self, name)
        return super().__getattr__(name)


def load(sdk: str, *modules: str, **services: Iterable[str]) -> types.ModuleType:
    """Import the SDK package ``sdk``, the given ``modules`` of it and, of each service package
    named as a keyword, only the given modules, their public names set on the service package
    as its ``__init__`` would.

    Returns the SDK's top-level package (``aws`` of ``import pulumi_aws as aws``).
    """
    top = importlib.import_module(sdk)
    for module_name in modules:
        importlib.import_module(f"{sdk}.{module_name}")
    for service, service_modules in services.items():
        package = _partial(top, service)
        for module_name in service_modules:
            module = importlib.import_module(f"{package.__name__}.{module_name}")
            if type(package) is _PartialPackage:
                _export(package, module)
    return top


def preload(*stack_modules: str) -> None:
    """Import stack modules, and with them exactly the SDK modules they declare (e.g. in a
    thread, while the pulumi CLI starts): ``preload("stacks.aws_ecs", "stacks.aws_worker")``.
    """
    for name in stack_modules:
        importlib.import_module(name)


PULUMI_DEFERRED = (
    "pulumi.automation",
    "pulumi.dynamic",
    "pulumi.runtime._instrumentation",
    "yaml",
    "grpc",
    "grpc.aio",
)
"""What ``import pulumi`` loads that a command may never use:

- ``pulumi.automation``, the Automation API, with ``urllib.request`` (and with it
  ``http.client`` and ``email``) and its remote workspaces, and ``pulumi.dynamic``, dynamic
  providers, with dill (and ``multiprocessing``) to serialise them. ``pulumi/__init__.py``
  imports both eagerly; a plan under mocks (``preview --offline``) uses neither. The engine
  uses both (the Prefect resources are dynamic ones): :func:`provision.preload.start` runs
  them on the caller's thread before the program's modules load on another.
- ``yaml`` (PyYAML), which the Automation API's local workspace imports to read and write
  settings files: ~90 million instructions, mostly its resolver's regular expressions. The
  engine writes its project and stack settings as JSON (which is YAML) and never has the
  workspace write or read them, so only a first ``up``, reading the stack settings file
  ``stack init`` wrote, parses YAML.
- ``pulumi.runtime._instrumentation``, imported for a side effect only: it sets up
  OpenTelemetry tracing when ``TRACEPARENT`` is set, and loads the OpenTelemetry SDK
  (``opentelemetry.sdk.trace``, its resources, metrics and semantic conventions) either way.
  Deferred only without ``TRACEPARENT``, when the side effect is none; no code of the SDK
  asks it for a name.
- ``grpc`` and ``grpc.aio``, the gRPC runtime, which the SDK's runtime modules import as they
  load: a plan under mocks talks to an in-process mock monitor and never calls it (~55 million
  instructions of an offline plan: ``ecs`` 2.69 to 2.64 billion, ``cloud-run-v2:push`` 1.72 to
  1.67). Both are deferred: ``grpc.aio``'s modules ask ``grpc`` for names as they load.
  Every engine run uses them, and :func:`provision.preload.start` runs them with the
  Automation API.

The first four: ~230 million instructions of an offline plan (``valgrind --tool=cachegrind``:
``cloud-run-v2:push`` 2.02 to 1.79 billion) and ~150 million of an engine ``preview`` (the
tracing set-up and PyYAML: GCP 2.30 to 2.15 billion)."""


def defer_pulumi_parts(environ: Mapping[str, str]) -> None:
    """Put the parts of :data:`PULUMI_DEFERRED` in ``sys.modules`` with their code not run yet,
    before anything imports pulumi: ``pulumi/__init__.py`` then binds them as they are, and
    the first name asked of one runs its code (on the same module object, so every reference
    sees it). Nothing is deferred once pulumi is loaded, or for an SDK release without a part.
    """
    if "pulumi" in sys.modules:
        return  # its __init__ ran: too late, and nothing to gain
    for name in PULUMI_DEFERRED:
        if name == "pulumi.runtime._instrumentation" and environ.get("TRACEPARENT"):
            continue  # tracing is on: set it up as the SDK does, at import
        defer(name)


def defer(name: str) -> None:
    """Put the module or package ``name`` in ``sys.modules`` with its code not run, unless it
    is there already: the first name asked of it that is not a submodule runs it. Its parent
    packages are not imported (their code may be what imports it)."""
    top, _, rest = name.partition(".")
    spec = importlib.util.find_spec(top)  # finds it only: none of its code runs
    if spec is not None and rest:
        if spec.submodule_search_locations is None:
            return
        path = list(spec.submodule_search_locations)
        for package in rest.split(".")[:-1]:
            path = [os.path.join(entry, package) for entry in path]
        spec = importlib.machinery.PathFinder.find_spec(name, path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredPart
    with _LOCK:
        sys.modules.setdefault(name, module)


def complete(name: str) -> None:
    """Run the code of ``name`` now if :func:`defer` left it to run later, on this thread."""
    module = sys.modules.get(name)
    if isinstance(module, _PartialPackage):
        _complete(module, "")


def _partial(top: types.ModuleType, service: str) -> types.ModuleType:
    """The service package ``top.service``: a partial package unless its ``__init__`` ran."""
    name = f"{top.__name__}.{service}"
    with _LOCK:
        if service not in vars(top):
            # An SDK compiled by sdk_bytecode makes a service's lazy module when first asked, once
            # (under its own lock): asked here, it is that module that becomes the partial one.
            getattr(top, service, None)
        module = sys.modules.get(name)
        if type(module) is _PartialPackage:
            return module
        if module is not None and type(module).__name__ != "_LazyModule":
            # Loaded in full (or being, by another thread: the import system's lock on it
            # makes the imports of its modules wait), or of a kind this does not know.
            return module
        spec = importlib.machinery.PathFinder.find_spec(name, top.__path__)
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError(f"{name} is not a package of {top.__name__}", name=name)
        if module is None:
            module = importlib.util.module_from_spec(spec)
            module.__class__ = _PartialPackage
            sys.modules[name] = module
        else:
            # The SDK's own lazy module (``pulumi._utils.lazy_import``, or importlib's
            # LazyLoader), not loaded yet: the same object becomes the partial package (before
            # anything reads it, which would load it), with its plain loader.
            module.__class__ = _PartialPackage
            module.__spec__ = spec
            module.__loader__ = spec.loader
        setattr(top, service, module)
        return module


def _export(package: types.ModuleType, module: types.ModuleType) -> None:
    """Set ``module``'s public names on ``package``, as ``from .module import *`` does."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    values = vars(module)
    with _LOCK:
        for n in names:
            package.__dict__.setdefault(n, values[n])


def _complete(package: types.ModuleType, wanted: str) -> None:
    """Run the package's (or deferred module's) own code on it, once.

    Its class changes only once that code has run: until then another thread asking it for a
    name lands here too, and waits for the lock. Its own code asking for a name it has not
    defined yet fails as it would in any module part-way through its import.
    """
    with _LOCK:
        if not isinstance(package, _PartialPackage):
            return  # completed meanwhile
        if package.__dict__.get(_RUNNING):
            raise AttributeError(
                f"partially initialized module {package.__name__!r} has no attribute {wanted!r}"
            )
        package.__dict__[_RUNNING] = True
        try:
            package.__spec__.loader.exec_module(package)
        finally:
            del package.__dict__[_RUNNING]
        if not isinstance(package, _DeferredPart):
            completed[package.__name__] = wanted
        package.__class__ = types.ModuleType


_RUNNING = "__provision_completing__"
"""Set in a partial package's namespace while :func:`_complete` runs its code."""
