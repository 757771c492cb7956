"""A file of fixed size that every worker process maps: the storage of the node's shared tables
(throttle buckets, sign-in failures, the CONNECT proxy's tunnels).

The file lives in the data directory, mode 0600 (it is the node's own state, like its database).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

__all__ = ["map_file"]


def map_file(path: Path, size: int) -> tuple[int, mmap.mmap]:
    """Open (creating it, mode 0600) and map ``path`` at exactly ``size`` bytes; new bytes read as
    zero (the file is extended sparse). Returns (the open descriptor, for ``flock``, and the map);
    the caller closes both. OSError when the file cannot be opened or mapped."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
        return fd, mmap.mmap(fd, size)
    except BaseException:
        os.close(fd)
        raise
