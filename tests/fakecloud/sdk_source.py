"""The source text of a provider SDK's class, for the tests that check a fake against the
installed SDK (the type token it registers)."""

from __future__ import annotations

import inspect
from pathlib import Path


def class_source(cls: type) -> str:
    """The text of ``cls``'s class statement, found without parsing its module.

    ``inspect.getsource`` parses the whole module, and Python 3.11.7 keeps the AST
    constructor's recursion depth in state every thread shares (CPython gh-106905, fixed in
    3.11.8): when another thread builds an AST while a parse of one of the SDKs' large modules
    has let go of the interpreter lock, the parse fails with "AST constructor recursion depth
    mismatch", as a test of the GCP fake did once in CI.
    """
    source = Path(inspect.getsourcefile(cls) or "").read_text()
    start = source.index(f"\nclass {cls.__name__}(")
    end = source.find("\nclass ", start + 1)
    return source[start : end if end != -1 else len(source)]
