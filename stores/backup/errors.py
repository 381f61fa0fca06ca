"""Why a backup or a restore stopped: the errors the CLI turns into messages."""

from __future__ import annotations

from stores.errors import StoreError


class BackupError(StoreError):
    """A backup or restore could not be done (a tool missing or failing, a bad directory).

    A store that does not answer raises :class:`stores.StoreUnavailableError` instead.
    """


class BackupDirectoryError(BackupError):
    """The directory given is not usable: not empty for a backup, or not a backup (of a
    layout this fleetwatch reads) for a restore."""


class DamagedBackupError(BackupDirectoryError):
    """A backup's files do not match its manifest: one is missing, shorter or altered."""


class TargetNotEmptyError(BackupError):
    """The stores a restore would write into already hold data, and replacing it was not
    asked for."""
