"""Exit statuses and the error type of the command line."""

from __future__ import annotations

__all__ = ["UsageError", "EXIT_OK", "EXIT_USAGE", "EXIT_INTERRUPTED"]

#: Success.
EXIT_OK = 0
#: A bad input (argparse uses the same status for bad options).
EXIT_USAGE = 2
#: Interrupted by SIGINT (Ctrl-C), as a shell reports it.
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
    """A bad command-line input: reported as one line on stderr, exit status :data:`EXIT_USAGE`."""
