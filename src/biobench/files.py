"""Reading the files users give us, and writing files all at once or not at all.

`read_user_file` is how every file a user names is read (preset files, search spaces, spool
files): only a regular file, and only up to a size limit, so `/dev/zero` cannot exhaust memory
and a named pipe cannot hang the command. `load_yaml` parses such a file's text with
yaml.safe_load's rules, refusing what would crash or stall the code that walks the result: an
anchor used inside itself (a recursive structure) and nesting deeper than any settings file
needs.

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
from typing import Any, BinaryIO

import yaml

from biobench.errors import BiobenchError

_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISFIFO: "a named pipe",
    stat.S_ISSOCK: "a socket",
}

# A settings file (presets, a search space, a spool) is kilobytes; a spool of a long run with
# per-layer rows a few megabytes. Anything larger is not one of them.
USER_FILE_LIMIT = 64 * 2**20
YAML_DEPTH_LIMIT = 64  # benchmarks.yaml nests 4 deep


def not_regular(mode: int) -> str:
    """Why a file of `mode` (not a regular file) cannot be read or written as one."""
    kind = next((k for test, k in _KINDS.items() if test(mode)), "not a file")
    return f"it is {kind}, not a regular file"


def open_user_file(path: Path, *, fix: str, what: str = "") -> BinaryIO:
    """`path` opened for reading in binary, if it is a regular file (not a device, pipe or
    folder: see `read_user_file`); the caller bounds what it reads."""
    name = f"{what} {path}" if what else str(path)
    try:
        # O_NONBLOCK: opening a named pipe with no writer returns at once instead of waiting.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise BiobenchError(_read_message(name, error.strerror or str(error), fix)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise BiobenchError(_read_message(name, not_regular(mode), fix))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_user_file(path: Path, *, fix: str, what: str = "", limit: int = USER_FILE_LIMIT) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them; anything else (a folder,
    a device, a pipe, a larger file, an unreadable one) is one `BiobenchError` line naming
    `what` ("space file"), `path`, the cause and `fix`."""
    name = f"{what} {path}" if what else str(path)
    with open_user_file(path, fix=fix, what=what) as handle:
        try:
            size = os.fstat(handle.fileno()).st_size
            content = b"" if size > limit else handle.read(limit + 1)  # it may have grown
        except OSError as error:
            raise BiobenchError(_read_message(name, error.strerror or str(error), fix)) from None
    if size > limit or len(content) > limit:
        size = max(size, len(content))
        raise BiobenchError(
            _read_message(name, f"it is {size} bytes, more than the {limit} allowed", fix)
        )
    return content


def read_at_most(handle: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes of `handle`, fewer at its end, in chunks: a `size` taken from a
    file's own header is never allocated at once (a buffered read of n bytes reserves n)."""
    chunks, left = [], size
    while left > 0:
        chunk = handle.read(min(left, 2**20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_user_text(path: Path, *, fix: str, what: str = "", limit: int = USER_FILE_LIMIT) -> str:
    """`read_user_file`, decoded as UTF-8; text that is not UTF-8 is refused the same way."""
    try:
        return read_user_file(path, fix=fix, what=what, limit=limit).decode("utf-8")
    except UnicodeDecodeError:
        name = f"{what} {path}" if what else str(path)
        raise BiobenchError(_read_message(name, "it is not UTF-8 text", fix)) from None


class YamlRefused(yaml.composer.ComposerError):
    """Valid YAML that `load_yaml` does not load: its `problem` says why."""


class _LimitedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a recursive anchor and deep nesting while it composes the
    document, before anything walks it (Python's recursion limit would end the walk as a crash,
    or in the composer itself)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._open: list[str | None] = []  # the anchors of the nodes being composed

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor in self._open:
                raise YamlRefused(
                    None,
                    None,
                    f"alias *{event.anchor} is used inside its own anchor (a recursive value)",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        if len(self._open) >= YAML_DEPTH_LIMIT:
            raise YamlRefused(
                None,
                None,
                f"values nested more than {YAML_DEPTH_LIMIT} deep",
                self.peek_event().start_mark,
            )
        self._open.append(getattr(self.peek_event(), "anchor", None))
        try:
            return super().compose_node(parent, index)
        finally:
            self._open.pop()


def load_yaml(text: str) -> Any:
    """`text` parsed as yaml.safe_load parses it; a recursive anchor or nesting deeper than
    YAML_DEPTH_LIMIT raise YamlRefused, a yaml.YAMLError with `problem` and `problem_mark`."""
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


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
                raise BiobenchError(_message(path, not_regular(info.st_mode), fix))
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


def _read_message(name: str, cause: str, fix: str) -> str:
    return f"cannot read {name}: {cause}; {fix}"
