"""The Registry's operations, one room each, sharing one write path (``base``).

Not public API: use :class:`~prefect_model_registry.registry.Registry`.
"""
