"""Writing a file all at once or not at all: exports, plots, reports, checkpoints, spool files.

`atomic_write` writes beside the target, fsyncs and renames over it, so a reader, a crash or a
full disk never sees half a file and the previous content survives a failed write. A symlink is
written through (its target is replaced, the link stays); a path that is a directory, device or
pipe is refused rather than replaced or written into.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from biobench.errors import BiobenchError

_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISFIFO: "a named pipe",
    stat.S_ISSOCK: "a socket",
}


def atomic_write(
    path: Path, content: bytes | str | Callable[[BinaryIO], None], *, fix: str | None = None
) -> None:
    """Replace `path` with `content` (bytes, UTF-8 text, or a function writing to the file).

    Any failure leaves `path` as it was and no temporary file behind, and is raised as one
    `BiobenchError` line naming `path`, the cause and `fix`.
    """
    target = Path(os.path.realpath(path))
    temp: Path | None = None
    try:
        mode = None
        if target.exists():
            info = target.stat()
            if not stat.S_ISREG(info.st_mode):
                kind = next((k for test, k in _KINDS.items() if test(info.st_mode)), "not a file")
                raise BiobenchError(_message(path, f"it is {kind}, not a regular file", fix))
            mode = stat.S_IMODE(info.st_mode)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # whose own message, "File exists", would mislead
            raise BiobenchError(_message(path, f"{target.parent} is a file", fix)) from None
        # A unique name: two processes writing the same file never share a temporary file.
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as handle:
            if mode is not None:  # a replaced file keeps its permissions
                os.fchmod(handle.fileno(), mode)
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode() if isinstance(content, str) else content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        temp = None
    except OSError as error:
        raise BiobenchError(_message(path, error.strerror or str(error), fix)) from None
    finally:
        if temp is not None:
            with suppress(OSError):  # the write's own error is the one to report
                temp.unlink(missing_ok=True)


def _message(path: Path, cause: str, fix: str | None) -> str:
    return f"cannot write {path}: {cause}" + (f"; {fix}" if fix else "")
