"""The registry's machinery; not public API (import from ``prefect_model_registry.registry``).

Log, versions, index, idempotency, lifecycle rules, policy, lineage, artifacts, snapshots, search, cache and the
process-wide helpers.
"""
