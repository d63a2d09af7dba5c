"""Keeping a registry sound: ``verify``, ``verify --repair`` and retention (``gc``, ``delete-model``)."""
