"""The ``pdecontrol`` command: ``pdecontrol PROBLEM COMMAND [options]``.

Problems register themselves: a package declares an entry point in the group
``pdecontrol.problems`` naming a :class:`ProblemCommands` (the project's own: ``cnn``), or code
calls :func:`register_problem`. The framework owns what every problem's command line needs:

* logging to stderr (``-v`` more, ``-q`` less) and tqdm progress bars; results go to stdout;
* errors in the input (:class:`~pdecontrol.cli.errors.UsageError`, ``ValueError``, ``TypeError``,
  ``OSError``) as one line ``pdecontrol PROBLEM COMMAND: error: ...`` with exit status 2; a run
  that fails while running (:class:`~pdecontrol.cli.errors.RunFailed`, ``MemoryError``) and any
  other exception (a bug) the same with exit status 1 (``-v`` shows the traceback);
* SIGINT (Ctrl-C) and SIGTERM stop the command between two file operations, with exit status
  130 and 143 (:mod:`pdecontrol.cli.signals`; the handlers are installed here only);
* run directories with ``--out`` / ``--name`` / ``--resume`` for commands that write one
  (:class:`RunCommand`, :mod:`pdecontrol.cli.rundir`);
* settings dataclasses as options (:mod:`pdecontrol.cli.options`).

At start-up the command keeps freed memory in the process
(:func:`pdecontrol.memory.retain_freed_memory`); ``PDECONTROL_RETAIN_MEMORY=0`` turns this off.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points

from .. import __version__
from ..memory import retain_freed_memory
from .errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    ClusterError,
    RunFailed,
    UsageError,
)
from .rundir import RunDirectory
from .signals import Terminated, handle_signals

__all__ = [
    "main",
    "build_parser",
    "ProblemCommands",
    "Command",
    "RunCommand",
    "register_problem",
    "registered_problems",
    "ENTRY_POINT_GROUP",
]

logger = logging.getLogger("pdecontrol.cli")

#: Entry-point group in which packages register their problems.
ENTRY_POINT_GROUP = "pdecontrol.problems"


class Command:
    """A subcommand of a problem: ``name``, ``help``, ``description``, its options and its run.

    Subclasses set the three strings and implement :meth:`add_arguments` and :meth:`run`.
    """

    name: str = ""
    help: str = ""
    description: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's own options."""

    def run(self, args) -> int:
        """Do the work; return the exit status."""
        raise NotImplementedError


class RunCommand(Command):
    """A command that writes a run directory (``--out``, ``--name``, ``--resume`` are added).

    Implement :meth:`configure` (the full, validated configuration from the options: what
    ``config.json`` keeps and ``--resume`` compares) and :meth:`execute` (the run; it calls
    ``run_dir.start(config, argv)`` when the inputs are checked and the run is about to write).
    """

    def add_run_arguments(self, parser) -> None:
        output = parser.add_argument_group("output")
        output.add_argument("--out", default=None,
                            help="run directory to create (default runs/<--name or timestamp>)")
        output.add_argument("--name", default=None, help="name of the run directory under runs/")
        output.add_argument("--resume", action="store_true",
                            help="continue the interrupted run in --out with its saved "
                                 "configuration")
        cluster = parser.add_argument_group("cluster (dask.distributed)")
        where = cluster.add_mutually_exclusive_group()
        where.add_argument("--workers", type=int, default=None, metavar="N",
                           help="evaluate on a local Dask cluster of N worker processes (one "
                                "thread each)")
        where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                           help="evaluate on the Dask cluster of the scheduler at ADDRESS "
                                "(e.g. tcp://10.0.0.1:8786)")

    def configure(self, args) -> dict:
        """The run's full configuration (JSON-able), defaults filled in."""
        raise NotImplementedError

    def given_options(self, args) -> list:
        """Names of the configuration entries set by options on this command line."""
        return []

    def execute(self, config: dict, run_dir: RunDirectory, args) -> int:
        raise NotImplementedError

    def run(self, args) -> int:
        run_dir = RunDirectory.from_args(args, args.problem, self.name)
        if args.resume:
            config = run_dir.resumed_config(self.configure(args), self.given_options(args))
            logger.info("resuming the run in %s", run_dir.path)
        else:
            run_dir.check_new()
            config = self.configure(args)
        try:
            with _cluster(args):
                return self.execute(config, run_dir, args)
        except ClusterError as error:
            run_dir.abandon()
            if not run_dir.path.exists():
                raise
            raise ClusterError(f"{error}; the run's last saved state is in {run_dir.path}: "
                               f"continue it with `pdecontrol {args.problem} {self.name} "
                               f"--resume --out {run_dir.path}`") from error
        except RunFailed:
            run_dir.abandon(failed=True)
            raise
        except BaseException as error:
            run_dir.abandon()
            if isinstance(error, KeyboardInterrupt) and any(run_dir.state_dir.glob("*")):
                logger.warning("the run's state is kept in %s: continue it with `pdecontrol %s %s "
                               "--resume --out %s`", run_dir.state_dir, args.problem, self.name,
                               run_dir.path)
            raise


@contextmanager
def _cluster(args):
    """The Dask client of ``--workers`` / ``--scheduler`` as the current client for the block
    (nothing without them); a local cluster is shut down afterwards."""
    if args.workers is None and args.scheduler is None:
        yield None
        return
    from ..distributed import start_client, using

    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    # dask configures its own loggers on import: its INFO lines only with -vv
    verbosity = args.verbose - args.quiet
    logging.getLogger("distributed").setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)
    try:
        client = start_client(workers=args.workers, address=args.scheduler,
                              retain_memory=os.environ.get("PDECONTROL_RETAIN_MEMORY", "1") != "0")
    except OSError as error:
        raise UsageError(f"cannot reach the Dask scheduler {args.scheduler}: {error}") from None
    logger.info("evaluating on %d Dask workers (%s)", len(client.scheduler_info()["workers"]),
                client.scheduler.address)
    try:
        with using(client):
            yield client
    except Exception as error:
        if _cluster_failed(error, client):
            raise ClusterError(f"the Dask cluster failed ({type(error).__name__}: "
                               f"{str(error).splitlines()[0] if str(error) else 'no message'})"
                               ) from error
        raise
    finally:
        cluster = client.cluster if args.workers is not None else None
        client.close()
        if cluster is not None:
            cluster.close()


def _cluster_failed(error: Exception, client) -> bool:
    """Whether ``error`` comes from the cluster (not from the problem's own code on it)."""
    from concurrent.futures import CancelledError

    module = type(error).__module__ or ""
    return (module.split(".")[0] == "distributed" or isinstance(error, CancelledError)
            or client.status != "running")


@dataclass(frozen=True)
class ProblemCommands:
    """What a problem registers: its name, one line of help and its commands."""

    name: str
    help: str
    commands: tuple

    def __post_init__(self):
        for command in self.commands:
            if not isinstance(command, Command):
                raise TypeError(f"commands of problem {self.name!r} must be Command objects, got "
                                f"{type(command).__name__}")


_REGISTERED: dict = {}


def register_problem(problem: ProblemCommands) -> ProblemCommands:
    """Make ``pdecontrol PROBLEM ...`` available in this process (entry points do it for
    installed packages)."""
    if not isinstance(problem, ProblemCommands):
        raise TypeError(f"register a ProblemCommands, got {type(problem).__name__}")
    _REGISTERED[problem.name] = problem
    return problem


def registered_problems() -> dict:
    """name -> :class:`ProblemCommands`: the entry points of installed packages and
    :func:`register_problem` calls (these win)."""
    problems = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            problem = entry.load()
        except Exception as error:  # a broken plug-in must not break the others
            logger.warning("problem %r (%s) cannot be loaded: %s", entry.name, entry.value, error)
            continue
        if isinstance(problem, ProblemCommands):
            problems[problem.name] = problem
        else:
            logger.warning("entry point %r does not name a ProblemCommands", entry.name)
    problems.update(_REGISTERED)
    return dict(sorted(problems.items()))


def _add_verbosity(parser, *, top: bool = False):
    default = 0 if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="more logging (-v: INFO everywhere and tracebacks, -vv: DEBUG)")
    parser.add_argument("-q", "--quiet", action="count", default=default,
                        help="less output: no progress bars, warnings only")


def build_parser(problems: dict | None = None) -> argparse.ArgumentParser:
    """The ``pdecontrol`` argument parser over the registered problems."""
    problems = registered_problems() if problems is None else problems
    parser = argparse.ArgumentParser(
        prog="pdecontrol",
        description="PDE-constrained optimal control: run a registered problem's commands "
                    "(`pdecontrol problems` lists them).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_verbosity(parser, top=True)
    subparsers = parser.add_subparsers(dest="problem", metavar="PROBLEM")
    subparsers.required = True
    listing = subparsers.add_parser("problems", help="list the registered problems and commands")
    _add_verbosity(listing)
    for problem in problems.values():
        problem_parser = subparsers.add_parser(problem.name, help=problem.help,
                                               description=problem.help)
        _add_verbosity(problem_parser)
        commands = problem_parser.add_subparsers(dest="command", metavar="COMMAND")
        commands.required = True
        for command in problem.commands:
            command_parser = commands.add_parser(command.name, help=command.help,
                                                 description=command.description or command.help)
            _add_verbosity(command_parser)
            command.add_arguments(command_parser)
            if isinstance(command, RunCommand):
                command.add_run_arguments(command_parser)
            command_parser.set_defaults(handler=command)
    return parser


def _configure_logging(verbosity: int) -> None:
    """``verbosity`` = (number of -v) - (number of -q): < 0 warnings only; 0 INFO of runs and
    problems (one line per history row); 1 INFO everywhere (every optimiser run); >= 2 DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if verbosity < 0 else logging.INFO if verbosity < 2
                  else logging.DEBUG)
    quiet_below = logging.WARNING if verbosity < 1 else logging.NOTSET
    logging.getLogger("pdecontrol").setLevel(quiet_below)
    for name in ("pdecontrol.continuation", "pdecontrol.cli"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def _list_problems(problems: dict) -> int:
    for problem in problems.values():
        print(f"{problem.name}: {problem.help}")
        for command in problem.commands:
            print(f"  pdecontrol {problem.name} {command.name}: {command.help}")
    return 0


def _misplaced_command(argv, problems: dict) -> str | None:
    """A hint when the first word is a problem's command (``pdecontrol train``)."""
    words = [word for word in argv if not word.startswith("-")]
    if not words or words[0] in problems or words[0] == "problems":
        return None
    owners = [p.name for p in problems.values() if any(c.name == words[0] for c in p.commands)]
    if not owners:
        return None
    return (f"pdecontrol: error: {words[0]!r} is a command of the problem "
            f"{' or '.join(map(repr, owners))}: run `pdecontrol {owners[0]} {words[0]} ...`")


def main(argv=None) -> int:
    """Run the ``pdecontrol`` command line; returns the exit status (0 on success)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    problems = registered_problems()
    hint = _misplaced_command(argv, problems)
    if hint is not None:
        print(hint, file=sys.stderr)
        return EXIT_USAGE
    args = build_parser(problems).parse_args(argv)
    args.argv = argv
    _configure_logging(args.verbose - args.quiet)
    if args.problem == "problems":
        return _list_problems(problems)
    if os.environ.get("PDECONTROL_RETAIN_MEMORY", "1") != "0":
        retain_freed_memory()
    name = f"pdecontrol {args.problem} {args.command}"
    try:
        with handle_signals():
            return args.handler.run(args)
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)
        print(f"{name}: {'terminated (SIGTERM)' if terminated else 'interrupted'}",
              file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except (RunFailed, MemoryError, UsageError, ValueError, TypeError, OSError) as error:
        if args.verbose:
            raise
        print(f"{name}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_FAILED if isinstance(error, (RunFailed, MemoryError)) else EXIT_USAGE
    except Exception as error:  # a bug: still one line, the traceback with -v
        if args.verbose:
            raise
        print(f"{name}: error: unexpected {type(error).__name__}: {_one_line(error)}; rerun with "
              "-v for the traceback and report it", file=sys.stderr)
        return EXIT_FAILED


def _one_line(error: BaseException) -> str:
    """The first line of ``error``'s message; an ``OSError`` as ``reason: file`` without the
    ``[Errno N]`` prefix; a bare ``MemoryError`` as what to do."""
    if isinstance(error, OSError) and error.strerror and str(error).startswith("[Errno"):
        return f"{error.strerror.lower()}: {error.filename}" if error.filename else error.strerror
    if isinstance(error, MemoryError):
        detail = f" ({str(error).strip()})" if str(error).strip() else ""
        return (f"out of memory{detail}; make the problem smaller (resolution, examples, "
                "channels, layers, batch)")
    message = str(error).strip()
    return message.splitlines()[0] if message else type(error).__name__
