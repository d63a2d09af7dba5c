"""``python -m prefect_model_registry.flows.cli``: the ``pmr`` command."""

from __future__ import annotations

from prefect_model_registry.flows.cli import main

main()
