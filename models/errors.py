"""The exceptions that mean "bad input", shown to a user as one clear line instead of a traceback."""

from models.datasets.base import DatasetError
from models.imaging import ImageError
from models.checkpoint import CheckpointError
from models.schema import CaseError


class StartupError(Exception):
    """A server (or other long-running command) cannot start; the message is one line that says why."""


USER_ERRORS = (ImageError, CaseError, DatasetError, CheckpointError, StartupError, FileNotFoundError,
               NotADirectoryError, ValueError)
