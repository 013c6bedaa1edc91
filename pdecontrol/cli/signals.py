"""SIGINT and SIGTERM in the ``pdecontrol`` command: stop promptly, between two file operations.

:func:`handle_signals` (``main`` runs every command inside it; library code installs no handler)
turns SIGINT into ``KeyboardInterrupt`` and SIGTERM into :class:`Terminated` (a
``KeyboardInterrupt``, so the same clean-up runs), raised through
:func:`pdecontrol.io.call_outside_file_operations`: a file being read or written is finished
first (it is complete and verified), then the command stops, its last resume state kept. A
signal repeated during that write changes nothing. ``main`` exits with 130 (SIGINT) or 143
(SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from ..io import call_outside_file_operations

__all__ = ["handle_signals", "Terminated"]


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived."""


def _stop(signum: int):
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _handler(signum, frame):
    call_outside_file_operations(lambda: _stop(signum))


@contextmanager
def handle_signals():
    """Within the block, SIGINT and SIGTERM stop the main thread between file operations (see
    the module docstring); the previous handlers are restored afterwards. Outside the main
    thread (where Python delivers no signals) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _handler)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
