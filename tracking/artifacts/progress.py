"""Progress bars for long artifact transfers (``rich`` is imported only when one shows).

A bar shows when the transfer is large (:data:`PROGRESS_MIN_FILES` files or
:data:`PROGRESS_MIN_BYTES` bytes by default) and either the caller forces it
(``progress=True``) or, in auto mode (``progress=None``), stderr is a terminal.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "PROGRESS_MIN_BYTES",
    "PROGRESS_MIN_FILES",
    "ProgressPolicy",
    "TransferProgress",
    "wants_progress",
]

#: A transfer of at least this many files gets a bar.
PROGRESS_MIN_FILES = 100
#: A transfer of at least this many bytes gets a bar.
PROGRESS_MIN_BYTES = 64 * 1024 * 1024


def wants_progress(
    progress: bool | None,
    *,
    files: int,
    nbytes: int,
    min_files: int = PROGRESS_MIN_FILES,
    min_bytes: int = PROGRESS_MIN_BYTES,
) -> bool:
    """Whether a transfer of ``files`` files and ``nbytes`` bytes shows a bar.

    ``progress`` False never shows one, True shows one for large transfers,
    None does the same only when ``sys.stderr`` is a terminal (read at call
    time, so tests and pipes stay quiet).
    """
    if progress is False or (files < min_files and nbytes < min_bytes):
        return False
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())
    return True


class TransferProgress:
    """A byte-counting progress bar for one transfer; does nothing when disabled.

    Example::

        with TransferProgress("Uploading 3 files", total_files=3, total_bytes=n,
                              enabled=True) as bar:
            bar.advance(len(chunk))
            bar.file_done()
    """

    def __init__(
        self,
        description: str,
        *,
        total_files: int,
        total_bytes: int,
        enabled: bool,
        console: Console | None = None,
    ) -> None:
        self.description = description
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.enabled = enabled
        self._console = console
        self._files_done = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> TransferProgress:
        if self.enabled:
            # Imported here: rich.progress costs ~0.1 s and most transfers are small.
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[files_done]}/{task.fields[files_total]} files"),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self._console or Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.description,
                total=self.total_bytes,
                files_done=0,
                files_total=self.total_files,
            )
        return self

    def advance(self, nbytes: int) -> None:
        """Count ``nbytes`` more bytes as transferred."""
        if self._progress is not None:
            self._progress.advance(self._task, nbytes)

    def file_done(self) -> None:
        """Count one more file as transferred."""
        self._files_done += 1
        if self._progress is not None:
            self._progress.update(self._task, files_done=self._files_done)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@dataclass(frozen=True)
class ProgressPolicy:
    """When an artifact repository's transfers show a bar (see :func:`wants_progress`)
    and on which console.

    Example::

        with ProgressPolicy(progress=True).bar("Uploading", "models", 120, n) as bar:
            ...
    """

    progress: bool | None = None
    console: Console | None = None
    min_files: int = PROGRESS_MIN_FILES
    min_bytes: int = PROGRESS_MIN_BYTES

    def bar(self, verb: str, rel: str, files: int, nbytes: int) -> TransferProgress:
        """The bar of one transfer of ``files`` files, ``nbytes`` bytes, at ``rel``."""
        enabled = wants_progress(
            self.progress,
            files=files,
            nbytes=nbytes,
            min_files=self.min_files,
            min_bytes=self.min_bytes,
        )
        noun = "file" if files == 1 else "files"
        return TransferProgress(
            f"{verb} {files} {noun} ({rel or '.'})",
            total_files=files,
            total_bytes=nbytes,
            enabled=enabled,
            console=self.console,
        )
