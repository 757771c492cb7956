from __future__ import annotations

import mmap
import os
from pathlib import Path

from kluis.api.mapped import map_file


def test_a_new_file_is_private_zeroed_and_exactly_sized(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    fd, table = map_file(path, 4096)
    try:
        assert table[:] == bytes(4096) and path.stat().st_size == 4096
        assert path.stat().st_mode & 0o777 == 0o600
        table[7] = 1
    finally:
        table.close()
        os.close(fd)
    fd, again = map_file(path, 4096)  # another process maps what is there
    try:
        assert again[7] == 1
    finally:
        again.close()
        os.close(fd)


def test_a_file_of_another_size_is_resized(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    path.write_bytes(b"x" * 10)
    fd, table = map_file(path, mmap.PAGESIZE)
    try:
        assert len(table) == mmap.PAGESIZE and table[:10] == b"x" * 10 and table[10:] == bytes(mmap.PAGESIZE - 10)
    finally:
        table.close()
        os.close(fd)
