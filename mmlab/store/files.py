"""File safety: what a database path must be before SQLite touches it, private files and
folders, files written whole (`replace_atomically`: every file mmlab writes beside a target
goes through it), refusing databases mmlab did not write, opening connections, and what a
storage failure means to the user."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import ConfigError, StorageError
from .migrations import APPLICATION_ID


def check_path(path: Path) -> Path:
    """`path` expanded, after refusing a directory, an unreadable, read-only or non-SQLite
    file and an uncreatable one (`ConfigError`); a new file is created private (0600, its
    folder 0700 when mmlab makes it) and an existing one tightened."""
    path = path.expanduser()
    if path.is_dir():
        raise ConfigError(f"db must be a file path, not a directory: {path}")
    if path.exists():
        if not os.access(path, os.R_OK):
            raise ConfigError(f"db file is not readable: {path}")
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
            raise ConfigError(
                f"db file is read-only: {path}. mmlab writes every call to its usage log; "
                "point MMLAB_DB (or db=) at a writable file"
            )
        with open(path, "rb") as f:
            head = f.read(16)
        if head and head != b"SQLite format 3\x00":
            raise ConfigError(f"db file is not an SQLite database: {path}")
    else:
        try:
            # Prompts and answers are private: the folder 0700 (when mmlab makes it)...
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create the db's folder {path.parent}: {exc}") from None
        if not os.access(path.parent, os.W_OK):
            raise ConfigError(f"cannot create the db in read-only folder {path.parent}")
        try:
            # ...and the file 0600 before SQLite opens it: SQLite gives its -wal and -shm
            # files the database file's permissions.
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass  # another process made it a moment ago
        except OSError as exc:
            raise ConfigError(f"cannot create the db {path}: {exc}") from None
    _make_private(path)
    return path


def check_foreign(path: Path) -> None:
    """Refuse (`ConfigError`) an existing file that is not an mmlab database, looking
    read-only: even switching a foreign file to WAL would modify it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            refuse_foreign(conn, path)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"cannot open db {path}: {exc}") from None


def refuse_foreign(db: sqlite3.Connection, path: Path) -> None:
    """Raise `ConfigError` if `db` carries another application's id, or no id and tables of
    its own: a database mmlab did not write, which it must not modify."""
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables - {"_migrations"}):
        raise ConfigError(
            f"db {path} is a foreign SQLite database (not written by mmlab); refusing to modify it"
        )


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the database at `path` in autocommit mode (transactions are explicit),
    WAL journal, waiting up to a minute for another writer's lock; usable from any thread."""
    try:
        conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=60000")
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"cannot open db {path}: {exc}") from None
    return conn


def storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """The `StorageError` a failed read or write of `path` raises, saying plainly when the
    disk is full or the file read-only (nothing was written either way)."""
    text = str(exc)
    if "full" in text.lower():
        return StorageError(f"db {path}: the disk is full; nothing was written ({text})")
    if "readonly" in text.lower() or "read-only" in text.lower():
        return StorageError(f"db {path} is read-only; nothing was written ({text})")
    return StorageError(f"db {path}: {text}")


def _make_private(path: Path) -> None:
    """Tighten a database mmlab owns (and its -wal/-shm, and an mmlab data folder) that other
    users could read: databases written before mmlab created them private."""
    try:
        me = os.getuid()
        for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if f.exists() and f.stat().st_uid == me and f.stat().st_mode & 0o077:
                f.chmod(0o600)
        folder = path.parent
        if (
            folder.name in ("mmlab", ".mmlab")
            and folder.stat().st_uid == me
            and folder.stat().st_mode & 0o077
        ):
            folder.chmod(0o700)
    except OSError:
        pass  # a file we cannot change is the owner's to secure; reading it is still refused


@contextlib.contextmanager
def replace_atomically(target: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Write `target` whole or not at all: yields a binary file to write, which becomes
    `target` only when the block ends without an error (fsynced, renamed over it, the folder
    fsynced); on an error it is removed and `target` is left as it was.

    The file is made by `tempfile.mkstemp` in `target`'s folder — a fresh random name opened
    with ``O_CREAT | O_EXCL`` (``O_NOFOLLOW``), mode 0600 — never at a predictable name such
    as ``target.part``, so a symlink planted anywhere cannot redirect the write; and the
    rename replaces `target`'s own directory entry, so a symlink planted at `target` itself
    is replaced, never written through. The result keeps mode 0600 (prompts and answers
    are private)."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (where the filesystem can fsync a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)


def private_dir(path: Path) -> Path:
    """`path` as a folder only this user can use: made 0700 if missing; if it exists it must
    be a real folder (not a symlink), owned by this user and closed to others, else
    `ConfigError` — a folder planted beside a target would let someone else read what mmlab
    writes into it, or feed it files of their own."""
    try:
        path.mkdir(mode=0o700)
        return path
    except FileExistsError:
        pass
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        what = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a folder"
        raise ConfigError(f"{path} is {what}; mmlab keeps private files there: remove it")
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError(
            f"{path} is not a private folder of yours (owner or mode {stat.filemode(info.st_mode)}"
            "); mmlab keeps private files there: remove it"
        )
    return path
