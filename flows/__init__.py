"""Prefect flows for the model lifecycle: retraining pipeline, promotion, archival, rollback, decisions.

Importing this package does not import Prefect; import the flow modules (``prefect_model_registry.flows.pipeline``,
``prefect_model_registry.flows.lifecycle``) for the flows themselves.
"""

from __future__ import annotations

from prefect_model_registry.flows.core.events import send as _send_to_prefect
from prefect_model_registry.flows.core.freshness import REFRESHER as _REFRESHER
from prefect_model_registry.registry.hooks import add_listener as _add_listener
from prefect_model_registry.registry.hooks import add_store_listener as _add_store_listener

# Every registry event this process appends becomes a model.* Prefect event (the entry point does the same for
# code that uses the registry without importing flows).
_add_listener(_send_to_prefect)
# ... and, with a Prefect API, refreshes the registry-overview artifact in the background (core/freshness.py).
_add_store_listener(_REFRESHER)

if __name__ != "prefect_model_registry.flows":
    # Run from the checkout, the bare folder name would load a second copy of every class (two `Registry`
    # types, two error hierarchies that do not catch each other's errors): only the installed name is allowed.
    raise ImportError(f"import prefect_model_registry.flows, not {__name__!r}")
