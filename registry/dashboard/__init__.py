"""``pmr ui``: a read-only web dashboard over a registry location (no route changes anything).

The pages read the registry through its public API on every request (live); every stored text is rendered as text
(Jinja2 with autoescaping; JSON for the charts escaped for ``<script>``); requests whose ``Host`` is not the bound
address are refused (DNS rebinding). See :func:`prefect_model_registry.registry.dashboard.app.create_app`.
"""

from __future__ import annotations
