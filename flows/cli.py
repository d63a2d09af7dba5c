"""The ``pmr`` console script: the registry commands, plus commands that drive Prefect flows.

The registry commands live in :mod:`registry.cli` (no Prefect import). Commands added here import Prefect
only when they run, so ``pmr models`` stays fast.
"""

from __future__ import annotations

from registry.cli import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
