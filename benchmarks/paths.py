"""Default locations of the benchmarks' inputs, resolved when a command runs (never from ``__file__``).

An installed package lives in ``site-packages``: a default derived from the module's own path
would point there.  The real-data folder is therefore, in order: the command's option, the
``CLOUDMASK_DATA`` environment variable, or ``../shared/data`` relative to the working directory
(a clone with ``../shared`` beside it).  Results go to the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "CLOUDMASK_DATA"
"""Environment variable naming the real-data folder (``mdgm/``, ``labels/``, ``reference/``)."""
DATA_FALLBACK = Path("..") / "shared" / "data"
"""The data folder relative to the working directory when neither option nor variable is given."""
DATA_HELP = f"${DATA_ENV}, else {DATA_FALLBACK.as_posix()} relative to the working directory"
"""What the commands' ``--help`` says about the data default."""


def data_dir(explicit: str | Path | None = None) -> Path:
    """The real-data folder: ``explicit``, else ``$CLOUDMASK_DATA``, else ``../shared/data`` (relative to the CWD)."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(DATA_ENV, "").strip()
    return Path(env) if env else DATA_FALLBACK
