"""Per-cloud glue between stacks and the engine; the contract is in ``base``."""
