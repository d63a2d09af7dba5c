"""Path display helper shared by the file-backed gates."""

from __future__ import annotations

from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[1]


def display_path(path: str | Path) -> str:
    """Return ``path`` relative to the repository root when inside it, so reports are machine-independent.

    Args:
        path: A file path.

    Returns:
        ``"validations/suites/breast_cancer.yaml"`` for bundled files, the path as given otherwise.

    """
    try:
        return Path(path).resolve().relative_to(_REPO_ROOT).as_posix()
    except ValueError:
        return str(path)
