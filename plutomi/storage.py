"""Where uploaded files are kept: a small interface, and a folder on disk behind it.

Services and views only ever use `get_storage()` and the four methods of `Storage`. The default
keeps files in UPLOAD_DIR (`instance/uploads`), which suits one machine or a shared volume. An
S3-compatible store (S3, R2, MinIO ...) would implement the same interface, `save` as one
PUT of the whole object (so a half-written object never exists under its name either), `open` as
a streaming GET; get_storage() would then build it from the settings instead.

Names are flat and chosen by us (random, see services/uploads.py), never by a user: anything
that is not a plain safe name is refused, so no name can reach outside the folder.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO

from flask import current_app

# Letters, digits, dot, dash and underscore; starting with a letter or digit, so no hidden
# files, no "..", no separators of any system.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_TEMP_PREFIX = ".partial-"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"not a safe storage name: {name!r}")
    return name


class Storage(ABC):
    """A flat store of files by name."""

    @abstractmethod
    def save(self, name: str, stream: BinaryIO) -> None:
        """Store the stream's bytes (read from where it stands to its end) under name; a
        reader sees either nothing or the whole file under that name, never a part of it."""

    @abstractmethod
    def open(self, name: str) -> BinaryIO:
        """The file for reading, from its start; FileNotFoundError when there is none."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove the file; a name that is already gone is not an error."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...


class LocalStorage(Storage):
    """Files in one folder on the local disk (or a volume every web host mounts)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def save(self, name: str, stream: BinaryIO) -> None:
        path = self._path(name)
        self.root.mkdir(parents=True, exist_ok=True)
        # Written to a temporary file in the same folder, then renamed over the real name:
        # the rename is atomic, so a crash leaves at most a ".partial-" file, never half a file
        # under the real name. Created 0600 by mkstemp.
        fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def open(self, name: str) -> BinaryIO:
        return self._path(name).open("rb")

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()


def get_storage() -> Storage:
    """The storage of the current app, built once from its config."""
    storage = current_app.extensions.get("plutomi.storage")
    if storage is None:
        storage = LocalStorage(current_app.config["UPLOAD_DIR"])
        current_app.extensions["plutomi.storage"] = storage
    return storage
