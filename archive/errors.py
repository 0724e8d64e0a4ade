"""Errors a user can cause. Each message is one line: what is wrong, then what to do."""


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


class DatabaseUnavailable(ArchiveError):
    pass


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
