"""Files written whole or not at all.

Every file filmstrip writes (videos, checkpoints, manifests, logs, reports) goes through
`atomic_path`: the bytes go to a temporary file of the writer's own beside the target, which
is renamed over the target only when complete. An interrupted or killed run leaves the old
file (or none), never half of one, and two writers of one path leave one whole file. Model
and checkpoint directories are built the same way (`atomic_directory`). `mkstemp` and
`mkdtemp` make their files private; each is given an ordinary file's or folder's permissions
(0666 or 0777 less the umask, as `open` and `mkdir` would) before the rename.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    """The process's umask, as it is now. Linux states it in /proc; elsewhere reading it
    means setting it for a moment (and a file another thread creates meanwhile would get 0666)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


@contextmanager
def atomic_path(path: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside `path` to write to; it replaces `path` when the block ends
    without an error and is removed when it does not. `suffix` ends the temporary name (a
    muxer that picks its format from the name needs the target's extension there)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextmanager
def atomic_directory(path: Path | str) -> Iterator[Path]:
    """A temporary folder beside `path` to fill; it takes the place of `path` (and of what
    was there) when the block ends without an error and is removed when it does not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            # Two renames: the old folder leaves and the new one arrives, and a kill between
            # them leaves the old one whole beside the target.
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
