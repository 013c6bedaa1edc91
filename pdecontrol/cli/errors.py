"""Exit statuses and the error types of the command line."""

from __future__ import annotations

__all__ = ["UsageError", "RunFailed", "ClusterError", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE",
           "EXIT_INTERRUPTED", "EXIT_TERMINATED"]

#: Success.
EXIT_OK = 0
#: The run failed while running (non-finite values, out of memory, its Dask cluster went
#: away); its last saved state can be resumed.
EXIT_FAILED = 1
#: A bad input (argparse uses the same status for bad options).
EXIT_USAGE = 2
#: Interrupted by SIGINT (Ctrl-C), as a shell reports it.
EXIT_INTERRUPTED = 130
#: Stopped by SIGTERM (128 + 15, as a shell reports a process that SIGTERM ended).
EXIT_TERMINATED = 143


class UsageError(ValueError):
    """A bad command-line input: reported as one line on stderr, exit status :data:`EXIT_USAGE`."""


class RunFailed(RuntimeError):
    """A run that could not finish (e.g. its objective became non-finite): reported as one line
    naming the likely options, exit status :data:`EXIT_FAILED`."""


class ClusterError(RunFailed):
    """The Dask cluster of a run failed (scheduler gone, a task that kept killing its workers):
    reported as one line with how to resume, exit status :data:`EXIT_FAILED`."""
