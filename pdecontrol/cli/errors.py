"""Exit statuses and the error type of the command line."""

from __future__ import annotations

__all__ = ["UsageError", "ClusterError", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED"]

#: Success.
EXIT_OK = 0
#: A run that failed on its way (e.g. its Dask cluster went away); it can be resumed.
EXIT_FAILED = 1
#: A bad input (argparse uses the same status for bad options).
EXIT_USAGE = 2
#: Interrupted by SIGINT (Ctrl-C), as a shell reports it.
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
    """A bad command-line input: reported as one line on stderr, exit status :data:`EXIT_USAGE`."""


class ClusterError(RuntimeError):
    """The Dask cluster of a run failed (scheduler gone, a task that kept killing its workers):
    reported as one line with how to resume, exit status :data:`EXIT_FAILED`."""
