"""Operation keys for registry writes made by flows: the flow run id plus the step.

A task retry, a flow retry and a re-run after a suspend keep the flow run id, so each step's key is the same
every time and the registry returns the outcome that landed instead of acting twice. Outside a flow run there
is no stable id to derive a key from, and None (unkeyed) is returned.
"""

from __future__ import annotations

from prefect.runtime import flow_run


def operation_key(*step: object) -> str | None:
    """``<flow run id>:<step…>`` for the current flow run, or None outside one."""
    run_id = flow_run.id
    if not run_id:
        return None
    return ":".join([str(run_id), *map(str, step)])
