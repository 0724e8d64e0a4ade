"""Errors a user can cause. Each message is one line: what is wrong, then what to do."""

import errno


class ArchiveError(Exception):
    """Base class: the CLI prints the message and exits with code 2."""


class ArchiveNotFound(ArchiveError):
    pass


class ArchiveExists(ArchiveError):
    pass


class SchemaTooNew(ArchiveError):
    pass


class ArchiveBusy(ArchiveError):
    """The database is locked by another process."""


class RunHeld(ArchiveError):
    """Another scheduler holds the run."""


class DatabaseUnavailable(ArchiveError):
    pass


class DiskFull(ArchiveError):
    """No space is left where the archive (or a file it writes) lives."""


_FULL = ("No space left on device", "database or disk is full", "Disk quota exceeded")


def is_disk_full(error: BaseException | None) -> bool:
    """Did `error`, or one it came from, fail for want of disk space? (Git and the database
    drivers say so only in their messages.)"""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DiskFull):
            return True
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(error) for text in _FULL):
            return True
        error = error.__cause__ or error.__context__
    return False


class UnknownNode(ArchiveError):
    pass


class AmbiguousNode(ArchiveError):
    pass


class MissingObject(ArchiveError):
    """The git store lacks an object a node row refers to: the archive is damaged."""


class InvalidAgent(ArchiveError):
    """A directory cannot become an agent (missing, empty, unreadable)."""


class ExportTargetNotEmpty(ArchiveError):
    pass


class InvalidArgument(ArchiveError):
    pass
