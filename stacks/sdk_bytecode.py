"""Provider SDK modules compiled with their annotations postponed (PEP 563), and cached.

A generated Pulumi provider SDK annotates every parameter, property and field of its tens of
thousands of classes: ``pulumi.Input[Optional[Sequence[pulumi.Input['SecurityGroupEgressArgs']]]]``.
Compiled as the SDK ships them, each annotation is a ``typing`` subscription evaluated while
the module loads, though nothing reads it then: ``pulumi_aws.ec2._inputs`` and ``outputs``
alone evaluate some 30,000. Compiled as if the module began with ``from __future__ import
annotations``, each is a string, and the pulumi runtime resolves the strings of the types a
program uses when it first serialises one (``pulumi._types`` calls ``typing.get_type_hints``
with the class's module globals, as it does for the SDK's forward references already).

One kind of class reads its annotations as it is made: a ``TypedDict`` (each input type's
``...ArgsDict`` twin, for type checkers: 353 in ``pulumi_aws.ec2._inputs``) turns every string
into a ``typing.ForwardRef``, compiling it, which would cost more than evaluating it. So its
fields' annotations leave its body and are set on the class once made, as the strings PEP 563
gives, with its required and optional keys (``NotRequired[...]`` or not), which is what the
``TypedDict`` machinery would have recorded. The pulumi runtime only asks whether a class is a
``TypedDict`` (``typing.is_typeddict``), never its fields.

Instructions of an offline plan (``valgrind --tool=cachegrind``): ``ecs`` 21% fewer,
``azure-container-instance`` 13%, ``cloud-run-v2:push`` 3%.

An SDK's top-level package (``pulumi_azuread``, whose resources all live there; the others'
few functions and their ~250 services) binds its names on first use: its ``__init__`` star-imports
every module of the package and binds every service with ``_utilities.lazy_import``, which
creates a lazy module per service as it loads. Compiled here, those statements become a table
and a module ``__getattr__`` (PEP 562): a name is bound when first asked (``azuread.Application``,
``from pulumi_aws import Provider``), a star import's module loaded whole with every name it
exports, a service by the same ``lazy_import`` call, once, whichever thread asks first (the
SDK made them all under the import lock; two would be two copies of its classes). The rest of
the ``__init__`` runs as it loads, the registration of every resource module with the pulumi
runtime included. Kept as they are: a star import of a module exporting a name that is also a
module (``get_region`` from ``get_region``: importing that module later would bind the module
under its name, which the star import used to overwrite), and any ``__init__`` where deferring
would change which binding of a name wins. Importing ``pulumi_azuread`` went from ~54 to
~23 ms (85 modules to 24), the other SDKs' top levels from 17 to 6 ms (GCP), 28 to 14 (AWS) and
24 to 9 (Azure): their services' lazy modules are no longer made one by one.

What changes for the SDK's code: nothing but when annotations are evaluated and when a
top-level name is bound. Its classes, resource tokens, input and output types, and their
translation to and from the engine are the same objects as with a plain import; only
``__annotations__`` hold strings (which ``typing.get_type_hints`` resolves).

The compiled code is kept under the cache directory given to :func:`install`, one file per
module, as a standard pyc (the interpreter's magic number, the source's modification time and
size, marshalled code) at the source's absolute path, as ``sys.pycache_prefix`` lays out its
tree, below a directory naming this compilation's format (:data:`FORMAT`): a module is compiled
once per SDK release, interpreter and format, and a changed source (an upgrade) is compiled
again. Writes are atomic (a temporary file renamed), so processes sharing the directory never
read half a file. Where the directory cannot be written, the module loads from the SDK's own
bytecode, as without this: compiling a module like ``ec2._inputs`` (28,000 lines) on every
command would cost more than its annotations. The cache is this tool's, like its pulumi CLI's
version record, and written whatever ``PYTHONDONTWRITEBYTECODE`` says (that governs the
interpreter's own ``__pycache__`` directories, which this leaves alone).
"""

from __future__ import annotations
import __future__

import ast
import contextlib
import importlib.machinery
import importlib.util
import marshal
import os
import sys
import threading
import types
from collections.abc import Sequence
from pathlib import Path

PACKAGES = ("pulumi_aws", "pulumi_gcp", "pulumi_azure_native", "pulumi_azuread")
"""The generated provider SDKs whose modules are compiled this way (their top-level packages).
The pulumi SDK itself is not one: some of its own code reads annotations as it loads."""

FORMAT = "pep563-typeddict-lazytop-3"
"""Names how modules are compiled here; a change to :func:`compile_module` gets a new one, so
no cache holds code compiled the old way."""

_FLAGS = __future__.annotations.compiler_flag
_HEADER = 16  # magic number, flags, source mtime, source size: a timestamp-based pyc
_LOCK = threading.Lock()


class _PostponedLoader(importlib.machinery.SourceFileLoader):
    """Loads a source module compiled with postponed annotations, through the cache."""

    def __init__(self, fullname: str, path: str, cached: str) -> None:
        super().__init__(fullname, path)
        self.cached = cached

    def get_code(self, fullname: str) -> object:
        """The module's code: from the cache when it matches the source, else compiled and
        cached; the SDK's own bytecode where the cache cannot be written."""
        source_path, cached = self.get_filename(fullname), self.cached
        try:
            stat = os.stat(source_path)
        except OSError:
            return super().get_code(fullname)
        header = _header(stat)
        try:
            with open(cached, "rb") as file:
                data = file.read()
        except OSError:
            data = b""
        if data[:_HEADER] == header:
            try:
                return marshal.loads(memoryview(data)[_HEADER:])
            except (EOFError, ValueError, TypeError):
                pass  # a damaged file: compile again and replace it
        tmp = _temporary(cached)
        if tmp is None:
            return super().get_code(fullname)  # compiling on every command costs more
        try:
            with os.fdopen(tmp[0], "wb") as file:  # closed whatever compiling raises
                top_level = "." not in fullname and self.is_package(fullname)
                code = compile_module(self.get_data(source_path), source_path, top_level=top_level)
                file.write(header + marshal.dumps(code))
            os.replace(tmp[1], cached)
        except OSError:
            return super().get_code(fullname)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp[1])  # renamed: gone already
        return code


class _Finder:
    """Hands the source modules of :data:`PACKAGES` to :class:`_PostponedLoader`."""

    def __init__(self, cache: str, packages: Sequence[str]) -> None:
        self.cache = cache
        self.packages = tuple(packages)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        """The path finder's spec for a module of the packages, with this module's loader."""
        if fullname.partition(".")[0] not in self.packages:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return spec  # not found, a namespace package, or bytecode or an extension only
        assert spec.origin is not None
        spec.cached = cache_path(self.cache, spec.origin)
        spec.loader = _PostponedLoader(fullname, spec.origin, spec.cached)
        return spec


def install(cache: Path, packages: Sequence[str] = PACKAGES) -> None:
    """Compile the modules of ``packages`` imported from now on with postponed annotations,
    cached under ``cache``. Modules already imported stay as they are; installing twice does
    nothing."""
    with _LOCK:
        if any(isinstance(finder, _Finder) for finder in sys.meta_path):
            return
        sys.meta_path.insert(0, _Finder(os.fspath(cache), packages))


def uninstall() -> None:
    """Import modules imported from now on as the SDK ships them (tests compare the two)."""
    with _LOCK:
        sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _Finder)]


def cache_path(cache: str | os.PathLike[str], source_path: str) -> str:
    """Where the compiled form of the module at ``source_path`` is kept: its absolute path
    under ``cache`` and :data:`FORMAT`, with the interpreter's tag (``vpc.cpython-311.pyc``).
    String operations only: an SDK's top-level package asks this of some 200 services."""
    directory, name = os.path.split(os.path.abspath(source_path))
    stem = name.rpartition(".")[0]
    tag = sys.implementation.cache_tag
    return os.path.join(cache, FORMAT, directory.lstrip(os.sep), f"{stem}.{tag}.pyc")


def compile_module(source: bytes, path: str, *, top_level: bool = False) -> types.CodeType:
    """``source`` compiled with postponed annotations, its ``TypedDict`` classes' field
    annotations set once each class is made; ``top_level``: an SDK's ``__init__``, whose
    modules and services load on first use (see the module's docstring)."""
    tree = _TypedDictFields().visit(ast.parse(source, path))
    if top_level:
        tree = _lazy_top_level(tree, os.path.dirname(path))
    return compile(ast.fix_missing_locations(tree), path, "exec", flags=_FLAGS, dont_inherit=True)


def _lazy_top_level(tree: ast.Module, directory: str) -> ast.Module:
    """An SDK's top-level ``__init__`` whose ``from .module import *`` statements and
    ``service = _utilities.lazy_import("sdk.service")`` assignments are done on first use, by
    a module ``__getattr__`` (PEP 562), instead of as it loads.

    A star import stays as it is when its module names no literal ``__all__`` (its names are
    unknown), or exports a name that is also a module of the package (``get_region`` from
    ``get_region``: a later import of that module would bind the module under the name, which
    the star import used to overwrite). The whole ``__init__`` stays as it is when a name it
    would defer is also exported by a star import it keeps, or bound or read by the rest of
    its code: the order of bindings would change."""
    exports: dict[str, str] = {}
    kept: set[str] = set()
    services: dict[str, str] = {}
    body: list[ast.stmt] = []
    for stmt in tree.body:
        module = _star_import(stmt)
        names = _literal_all(os.path.join(directory, f"{module}.py")) if module else None
        if (
            module is not None
            and names is not None
            and not any(_is_module(directory, name) for name in names)
        ):
            exports.update(dict.fromkeys(names, module))  # a later star import wins, as before
            continue
        if module is not None:
            if names is None:
                return tree
            kept.update(names)
        elif _type_checking(stmt):
            assert isinstance(stmt, ast.If)
            branches = []
            for branch in stmt.orelse:
                service = _lazy_service(branch)
                if service is None:
                    branches.append(branch)
                else:
                    services[service[0]] = service[1]
            # A new node: `tree` stays as it was, should the rest of it leave it so.
            stmt = ast.copy_location(ast.If(stmt.test, stmt.body, branches), stmt)
        body.append(stmt)
    if not exports and not services:
        return tree
    # What the rest binds or reads, the type checker's branches aside (they never run).
    run = [
        ast.If(stmt.test, [ast.Pass()], stmt.orelse) if _type_checking(stmt) else stmt
        for stmt in body
    ]
    used = kept | _bound_or_read(ast.Module(body=run, type_ignores=[]))
    if used & (set(exports) | set(services)):
        return tree
    tables = ast.parse(f"{_EXPORTS} = {exports!r}\n{_SERVICES} = {services!r}\n").body
    tree.body = [*tables, *_ON_FIRST_USE, *body]
    return tree


def _bound_or_read(tree: ast.AST) -> set[str]:
    """Every name ``tree`` reads or binds: names, imports, functions and classes."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias.asname or alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
    return names


def _is_module(directory: str, name: str) -> bool:
    """Whether the package in ``directory`` has a module or subpackage ``name``."""
    return os.path.exists(os.path.join(directory, f"{name}.py")) or os.path.isdir(
        os.path.join(directory, name)
    )


_EXPORTS = "_provision_exports"
_SERVICES = "_provision_services"
_LOCK_NAME = "_provision_lock"
_ON_FIRST_USE = ast.parse(
    f"""
{_LOCK_NAME} = __import__("threading").RLock()


def __getattr__(name):
    namespace = globals()
    service = {_SERVICES}.get(name)
    if service is not None:
        # Once, whichever thread asks first: two lazy modules for one service would be two
        # copies of its classes. What the SDK binds as it loads.
        with {_LOCK_NAME}:
            if name not in namespace:
                namespace[name] = _utilities.lazy_import(service)
        return namespace[name]
    module = {_EXPORTS}.get(name)
    if module is None:
        raise AttributeError(f"module {{__name__!r}} has no attribute {{name!r}}")
    import importlib

    # The import system runs the module once; binding its names again binds the same objects.
    loaded = importlib.import_module("." + module, __name__)
    for exported, source in {_EXPORTS}.items():
        if source == module:
            namespace[exported] = getattr(loaded, exported)
    return namespace[name]


def __dir__():
    return sorted({{*globals(), *{_EXPORTS}, *{_SERVICES}}})
"""
).body
"""What a lazy top-level ``__init__`` begins with: the names it defers are bound on first use,
a deferred export with every name its module exports (as its star import did)."""


def _star_import(stmt: ast.stmt) -> str | None:
    """``module`` of ``from .module import *`` (a module of this package), else None."""
    if (
        isinstance(stmt, ast.ImportFrom)
        and stmt.level == 1
        and stmt.module
        and "." not in stmt.module
        and [alias.name for alias in stmt.names] == ["*"]
    ):
        return stmt.module
    return None


def _literal_all(path: str) -> list[str] | None:
    """The module's ``__all__`` when its source assigns it a literal list of strings."""
    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == "__all__"
        ):
            try:
                names = ast.literal_eval(stmt.value)
            except ValueError:
                return None
            if isinstance(names, list | tuple) and all(isinstance(n, str) for n in names):
                return list(names)
            return None
    return None


def _type_checking(stmt: ast.stmt) -> bool:
    """Whether ``stmt`` is ``if typing.TYPE_CHECKING: ...`` (with an ``else`` or not)."""
    return isinstance(stmt, ast.If) and _names(stmt.test, "TYPE_CHECKING")


def _lazy_service(stmt: ast.stmt) -> tuple[str, str] | None:
    """``(name, "sdk.service")`` of ``name = _utilities.lazy_import("sdk.service")``."""
    if not (
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], ast.Name)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Attribute)
        and stmt.value.func.attr == "lazy_import"
        and isinstance(stmt.value.func.value, ast.Name)
        and stmt.value.func.value.id == "_utilities"
        and len(stmt.value.args) == 1
        and not stmt.value.keywords
        and isinstance(stmt.value.args[0], ast.Constant)
        and isinstance(stmt.value.args[0].value, str)
    ):
        return None
    return stmt.targets[0].id, stmt.value.args[0].value


class _TypedDictFields(ast.NodeTransformer):
    """Moves the field annotations of each class whose base is ``TypedDict`` out of its body,
    into statements after it that set what ``TypedDict`` would have recorded from them."""

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST | list[ast.stmt]:
        self.generic_visit(node)
        if not any(_names(base, "TypedDict") for base in node.bases):
            return node
        total = not any(
            k.arg == "total" and isinstance(k.value, ast.Constant) and k.value.value is False
            for k in node.keywords
        )
        fields = [
            stmt
            for stmt in node.body
            if isinstance(stmt, ast.AnnAssign)
            and stmt.simple
            and stmt.value is None
            and isinstance(stmt.target, ast.Name)
        ]
        if not fields:
            return node
        node.body = [stmt for stmt in node.body if stmt not in fields] or [ast.Pass()]
        annotations = {f.target.id: ast.unparse(f.annotation) for f in fields}  # type: ignore[union-attr]
        optional = {
            f.target.id  # type: ignore[union-attr]
            for f in fields
            if _wrapped(f.annotation, "NotRequired")
            or (not total and not _wrapped(f.annotation, "Required"))
        }
        required = set(annotations) - optional
        after = [
            _set(node.name, "__annotations__", annotations),
            _set(node.name, "__required_keys__", required),
            _set(node.name, "__optional_keys__", optional),
        ]
        return [node, *(ast.copy_location(stmt, node) for stmt in after)]


def _names(node: ast.expr, name: str) -> bool:
    """Whether ``node`` is ``name`` or ``something.name``."""
    return (isinstance(node, ast.Name) and node.id == name) or (
        isinstance(node, ast.Attribute) and node.attr == name
    )


def _wrapped(annotation: ast.expr, qualifier: str) -> bool:
    """Whether ``annotation`` is ``qualifier[...]`` (``NotRequired[...]``)."""
    return isinstance(annotation, ast.Subscript) and _names(annotation.value, qualifier)


def _set(cls: str, attribute: str, value: dict[str, str] | set[str]) -> ast.stmt:
    """``cls.attribute = value``: a dict of strings, or a frozenset of them."""
    if isinstance(value, dict):
        expr: ast.expr = ast.Dict(
            [ast.Constant(k) for k in value], [ast.Constant(v) for v in value.values()]
        )
    else:
        expr = ast.Call(
            ast.Name("frozenset", ast.Load()),
            [ast.Tuple([ast.Constant(k) for k in sorted(value)], ast.Load())],
            [],
        )
    target = ast.Attribute(ast.Name(cls, ast.Load()), attribute, ast.Store())
    return ast.Assign([target], expr)


def _header(stat: os.stat_result) -> bytes:
    """A timestamp-based pyc's header for a source with this ``stat``."""
    return (
        importlib.util.MAGIC_NUMBER
        + (0).to_bytes(4, "little")
        + (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    )


def _temporary(path: str) -> tuple[int, str] | None:
    """A new file beside ``path`` to write its content to and rename (open descriptor, name);
    None if that directory cannot be written."""
    import tempfile  # on a first import only: the console script installs this for `--help` too

    directory, name = os.path.split(path)
    try:
        os.makedirs(directory, exist_ok=True)
        return tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    except OSError:
        return None
