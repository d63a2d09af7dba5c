"""The team's own flows (a top-level package named ``flows``, as the package's folder in its repository is)."""
