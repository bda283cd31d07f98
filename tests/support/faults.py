"""A disk that fills up: what a checkpoint write meets on a full disk."""

from __future__ import annotations

import errno
from typing import BinaryIO

import torch


class FullDisk:
    """A file that takes 1,000 bytes, then fails every write as a full disk does."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.room = handle, 1000

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def disk_full_in_our_write(payload: object, handle: BinaryIO) -> None:
    handle.write(b"half a checkpoint")
    raise OSError(errno.ENOSPC, "No space left on device")


_torch_save = torch.save


def disk_full_in_torchs_zip_writer(payload: object, handle: BinaryIO) -> None:
    # torch's writer turns the OSError into "RuntimeError: [enforce fail at
    # inline_container.cc] unexpected pos": the run used to fail as an internal error.
    _torch_save(payload, FullDisk(handle))
