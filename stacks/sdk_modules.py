"""Import only the resource modules of a Pulumi provider SDK that a stack uses.

Each service package of a Pulumi provider SDK (``pulumi_aws.ec2``, ``pulumi_gcp.projects``,
``pulumi_azure_native.authorization``) runs ``from .<module> import *`` in its ``__init__`` for
every resource and function of that service: ``pulumi_aws.ec2`` alone is some 180 modules and,
even from bytecode, about 0.4 s, for the seven resources a pool uses. Every stack module
therefore declares, per service, the modules it takes names from, and gets its SDK from
:func:`load`::

    aws = sdk_modules.load("pulumi_aws", ec2=("vpc", "subnet", "_inputs"), iam=("role",))
    aws.ec2.Vpc(...)            # as with ``import pulumi_aws as aws``

A module is the file defining the name: a resource ``Vpc`` and its ``VpcArgs`` in ``vpc``,
nested input types (``SecurityGroupEgressArgs``) in ``_inputs``, enums in ``_enums``, a
function ``get_client_config_output`` in ``get_client_config``.

What stays as the SDK made it:

- the SDK's top-level package is imported as usual: its ``__init__`` registers the provider
  and every resource module with the Pulumi runtime (what deserialising a resource reference
  needs), and its top-level functions (``aws.get_caller_identity_output``) are there;
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
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Iterable

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
        if full in sys.modules or importlib.machinery.PathFinder.find_spec(full, self.__path__):
            # A submodule (``from . import outputs`` in a resource module): just that file.
            return importlib.import_module(full)
        _complete(self, name)
        return getattr(self, name)


def load(sdk: str, **services: Iterable[str]) -> types.ModuleType:
    """Import the SDK package ``sdk`` and, of each service package named as a keyword, only the
    given modules, their public names set on the service package as its ``__init__`` would.

    Returns the SDK's top-level package (``aws`` of ``import pulumi_aws as aws``).
    """
    top = importlib.import_module(sdk)
    for service, modules in services.items():
        package = _partial(top, service)
        for module_name in modules:
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


def _partial(top: types.ModuleType, service: str) -> types.ModuleType:
    """The service package ``top.service``: a partial package unless its ``__init__`` ran."""
    name = f"{top.__name__}.{service}"
    with _LOCK:
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
    """Run the service package's own ``__init__`` on it (once)."""
    with _LOCK:
        if type(package) is not _PartialPackage:
            return  # completed meanwhile
        package.__class__ = types.ModuleType
        try:
            package.__spec__.loader.exec_module(package)
        except BaseException:
            package.__class__ = _PartialPackage
            raise
        completed[package.__name__] = wanted
