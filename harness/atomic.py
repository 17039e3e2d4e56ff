"""Atomic file writes: every file the harness writes goes through here.

A run that is interrupted (Ctrl-C, out of memory, a killed CI job) must never leave a
half-written JSON or report that a later `report` or `compare` would read as truncated.
Each writer writes a temporary file in the destination's directory (same file system, so
the rename is atomic), flushes it to disk, and `os.replace`s it over the destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    For writers that want a file name rather than bytes (``savefig``, ``to_parquet``).
    The temporary keeps the destination's suffix so that such writers pick the right
    format; on an exception it is removed and ``path`` is left as it was.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix or dest.suffix or ".tmp",
                               dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, _mode_for(dest))  # mkstemp makes 0600; keep what a plain open() would
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Text version of `atomic_write_bytes` (UTF-8, newlines written as given)."""
    return atomic_write_bytes(path, text.encode(encoding))


def _mode_for(dest: Path) -> int:
    """The destination's current mode, or 0666 less the umask for a new file."""
    try:
        return dest.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync(path: Path) -> None:
    # Data on disk before the rename, or a crash could leave an empty file under the new name.
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
