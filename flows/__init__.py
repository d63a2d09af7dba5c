"""Prefect flows for the model lifecycle: retraining pipeline, promotion, archival, rollback, decisions.

Importing this package does not import Prefect; import the flow modules (``flows.pipeline``,
``flows.lifecycle``) for the flows themselves.
"""

from __future__ import annotations

from flows.events import send as _send_to_prefect
from registry.hooks import add_listener as _add_listener

# Every registry event this process appends becomes a model.* Prefect event (the entry point does the same for
# code that uses the registry without importing flows).
_add_listener(_send_to_prefect)
