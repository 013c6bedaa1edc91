"""The ``pdecontrol`` command line: problems register commands, the framework runs them.

* :mod:`~pdecontrol.cli.app` - ``main``, the parser over the registered problems
  (:class:`ProblemCommands`, :class:`Command`, :class:`RunCommand`), logging, exit statuses;
* :mod:`~pdecontrol.cli.rundir` - run directories: created when a run starts, resumed with
  ``--resume``, removed again when a run fails before writing a resume state;
* :mod:`~pdecontrol.cli.options` - settings dataclasses as options (:class:`SettingOption`);
* :mod:`~pdecontrol.cli.signals` - SIGINT and SIGTERM between file operations;
* :mod:`~pdecontrol.cli.errors` - :class:`UsageError`, :class:`RunFailed` and the exit statuses.

See ``docs/cli.md``.
"""

from .app import (
    ENTRY_POINT_GROUP,
    Command,
    ProblemCommands,
    RunCommand,
    build_parser,
    main,
    register_problem,
    registered_problems,
)
from .errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    ClusterError,
    RunFailed,
    UsageError,
)
from .options import NONE, SettingOption, add_setting_options, given_fields, settings_from_args
from .rundir import CONFIG_FILE, RUN_STAMP, STATE_DIR, RunDirectory

__all__ = [
    "main",
    "build_parser",
    "ProblemCommands",
    "Command",
    "RunCommand",
    "register_problem",
    "registered_problems",
    "ENTRY_POINT_GROUP",
    "UsageError",
    "RunFailed",
    "ClusterError",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "SettingOption",
    "NONE",
    "add_setting_options",
    "given_fields",
    "settings_from_args",
    "RunDirectory",
    "CONFIG_FILE",
    "STATE_DIR",
    "RUN_STAMP",
]
