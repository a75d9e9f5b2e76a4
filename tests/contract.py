"""The ``preview --json`` contract's top-level keys, as the README documents them: written out
here, once, so no test derives it from the code it checks."""

PREVIEW_KEYS = frozenset(
    {
        "pool",
        "type",
        "stack",
        "offline",
        "changes",
        "resources",
        "prefect",
        "grants",
        "credential",
        "worker",
        "profile",
        "rotation",
    }
)
