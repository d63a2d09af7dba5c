"""A class whose construction has a visible side effect: proves a refused artifact ran none of its code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class Tripwire:
    """Writes the file named by ``PMR_TRIPWIRE`` whenever an instance is rebuilt from a serialised state."""

    def __init__(self) -> None:
        self.armed = True

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(os.environ["PMR_TRIPWIRE"]).write_text("code from the artifact ran")
        self.__dict__.update(state)
