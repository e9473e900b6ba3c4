"""Files that survive a crash: everything a run or an export writes goes to a temporary name first.

A file (or directory) is written beside its final path under a `.partial` name and renamed
onto it only once complete; a rename within one directory is atomic. A process killed while
writing, or a write that fails (a full disk), therefore leaves the previous good file in
place, never a truncated one, plus at most a `.partial` leftover that the next write replaces.

Example:
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.json"
>>> write_text(path, "{}")
>>> path.read_text()
'{}'
"""

import contextlib
import os
import shutil
from pathlib import Path


class FileWriteError(OSError):
    """A file could not be written; the previous version of it, if any, is intact."""


def partial_path(path):
    """The temporary name `path` is written under: `best.keras` -> `best.partial.keras`.

    The extension is kept, because some writers (Keras' `model.save`) check it.
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def remove(path):
    """Removes a file or directory tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def replaced_on_success(path):
    """Yields the temporary path to write `path`'s new content to; renames it onto `path` on success.

    If the block writes nothing to the temporary path (a writer that decided not to save),
    `path` is left as it is. On an OSError inside the block the temporary file is removed and FileWriteError raised,
    naming `path` and the cause; `path` itself is untouched. Other exceptions propagate, also
    leaving `path` untouched.

    Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "report.json"
    >>> with replaced_on_success(path) as partial:
    ...     _ = partial.write_text("[]")
    >>> path.read_text()
    '[]'
    """
    path = Path(path)
    partial = partial_path(path)
    remove(partial)  # a leftover of an earlier crash
    try:
        yield partial
        if not partial.exists():
            return
        if path.is_dir() and partial.is_dir():  # a directory is replaced whole
            remove(path)
        os.replace(partial, path)
    except OSError as error:
        remove(partial)
        if isinstance(error, FileWriteError):
            raise
        reason = error.strerror or str(error)
        kept = "the previous file is intact" if path.exists() else "nothing was written"
        raise FileWriteError(f"{path}: could not be written ({reason}); {kept}") from error
    except BaseException:
        remove(partial)
        raise


def write_text(path, text):
    """Writes `text` to `path` through a temporary file (see the module docstring)."""
    with replaced_on_success(path) as partial:
        with open(partial, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())


def write_bytes(path, data):
    """Writes `data` to `path` through a temporary file (see the module docstring)."""
    with replaced_on_success(path) as partial:
        with open(partial, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
