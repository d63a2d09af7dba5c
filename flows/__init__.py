"""Prefect flows for the model lifecycle: retraining pipeline, promotion, archival, rollback, decisions.

Importing this package does not import Prefect; import the flow modules (``flows.pipeline``,
``flows.lifecycle``) for the flows themselves.
"""
