"""Run directories: where a command's run lives, how it starts, resumes and fails cleanly.

A run directory holds ``config.json`` (the run's full configuration, with a ``pdecontrol``
entry naming the version, problem and command), ``state/`` (the resume state while the run is
going) and whatever the command writes. The rules:

* a new run needs a directory that does not exist yet (``--out``, or ``runs/<--name or
  timestamp>``): the command never writes into a directory it did not create;
* the directory is created only when the run starts (:meth:`RunDirectory.start`, after the
  inputs were checked and the data loaded); a run that fails before it has written a resume
  state removes it again (:meth:`RunDirectory.abandon`), so nothing blocks the corrected rerun;
* ``--resume`` continues the run in ``--out`` with its saved configuration; options given with
  it must agree with the saved ones; temporaries left by a killed run are removed first;
* result files carry the SHA-256 of the run's ``config.json`` (:data:`RUN_STAMP`:
  :meth:`RunDirectory.write_netcdf` adds it), so that a file of another run is refused when the
  directory is read back (:meth:`RunDirectory.read_netcdf`, :meth:`RunDirectory.check_stamp`).
"""

from __future__ import annotations

import datetime
import hashlib
import shutil
from contextlib import contextmanager
from pathlib import Path

from .. import __version__
from ..io import (
    CorruptFileError,
    make_folder,
    read_json,
    read_netcdf,
    remove_partial_files,
    write_json,
    write_netcdf,
)
from .errors import UsageError

__all__ = ["RunDirectory", "CONFIG_FILE", "STATE_DIR", "RUN_STAMP"]

#: The configuration file of a run directory.
CONFIG_FILE = "config.json"
#: The folder of the resume state inside a run directory.
STATE_DIR = "state"
#: Attribute of a run's result files: the SHA-256 of its ``config.json``.
RUN_STAMP = "run_sha256"


def _lookup(config: dict, name: str):
    """``config[name]``, or the entry ``name`` of a nested dict (e.g. ``config["settings"]``)."""
    if name in config:
        return config[name]
    for value in config.values():
        if isinstance(value, dict) and name in value:
            return value[name]
    return None


class RunDirectory:
    """The run directory of one command invocation.

    Parameters
    ----------
    path : Path
    problem, command : str
        Recorded in (and checked against) ``config.json``.
    """

    def __init__(self, path, problem: str, command: str):
        self.path = Path(path)
        self.problem, self.command = problem, command
        self._created = False

    @classmethod
    def from_args(cls, args, problem: str, command: str) -> RunDirectory:
        """From ``--out`` / ``--name`` (default ``runs/<timestamp>``)."""
        if args.out is not None:
            return cls(args.out, problem, command)
        if args.resume and args.name is None:
            raise UsageError("--resume needs --out RUN_DIR (or --name) of the run to continue")
        name = args.name or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        return cls(Path("runs") / name, problem, command)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def state_dir(self) -> Path:
        return self.path / STATE_DIR

    def __truediv__(self, name) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ new runs
    def check_new(self) -> None:
        """Refuse a path that exists (a run of its own, or anything else of the user's)."""
        if self.config_path.is_file():
            raise UsageError(f"{self.path} already holds a run; continue it with --resume or "
                             "choose another --out/--name")
        if self.path.exists():
            raise UsageError(f"{self.path} exists and is not a run directory of pdecontrol; a run "
                             "writes only into a directory it creates: choose a new --out")

    def start(self, config: dict, argv) -> None:
        """Create the directory and write ``config.json`` (new runs; nothing for a resumed one)."""
        if self.config_path.is_file():
            return
        self.check_new()
        make_folder(self.path, exist_ok=False)
        self._created = True
        record = dict(config)
        record["pdecontrol"] = {"version": __version__, "problem": self.problem,
                                "command": self.command,
                                "argv": ["pdecontrol", *map(str, argv)]}
        write_json(self.config_path, record)

    def abandon(self, *, failed: bool = False) -> None:
        """After an error: remove the directory if this invocation created it and no resume
        state was written into it yet; after a run that ``failed`` (its state holds only the
        failure) even then."""
        if self._created and (failed or not any(self.state_dir.glob("*"))):
            shutil.rmtree(self.path, ignore_errors=True)
            self._created = False

    # ------------------------------------------------------------------ resumed runs
    def load_config(self) -> dict:
        """The saved configuration of a run to resume (checked to be this problem's command)."""
        if not self.config_path.is_file():
            raise UsageError(f"{self.config_path} not found: {self.path} is not a run directory "
                             "of pdecontrol; nothing to resume")
        try:
            config = read_json(self.config_path)
        except CorruptFileError as error:
            raise UsageError(str(error.with_fix("the run directory is damaged: start a new "
                                                "run"))) from None
        if not isinstance(config, dict) or not isinstance(config.get("pdecontrol"), dict):
            raise UsageError(f"{self.config_path} does not hold a run configuration of pdecontrol "
                             "(no 'pdecontrol' entry): the run directory is damaged; start a new "
                             "run")
        origin = config["pdecontrol"]
        if (origin.get("problem"), origin.get("command")) != (self.problem, self.command):
            raise UsageError(
                f"{self.path} holds a run of `pdecontrol {origin.get('problem')} "
                f"{origin.get('command')}`, not of `pdecontrol {self.problem} {self.command}`")
        return config

    def resumed_config(self, requested: dict, given: list) -> dict:
        """The saved configuration, after checking that the options ``given`` with ``--resume``
        (names, looked up in ``requested``) agree with it."""
        saved = self.load_config()
        # an entry given on this command line but absent from the saved configuration (an
        # option stored only when not its default) is a changed option, not damage
        missing = [name for name in requested if name not in saved and name not in given]
        missing += [f"{name}.{key}" for name, value in requested.items()
                    if isinstance(value, dict) and isinstance(saved.get(name), dict)
                    for key in value if key not in saved[name]]
        if missing:
            raise UsageError(f"{self.config_path} lacks {missing}; the run directory is damaged "
                             "and cannot be resumed: start a new run")
        changed = [name for name in given if _lookup(requested, name) != _lookup(saved, name)]
        if changed:
            raise UsageError(f"--resume continues {self.path} with its saved configuration; drop "
                             f"the changed option(s) {changed} or start a new run")
        remove_partial_files(self.path)
        return saved

    def write_json(self, name: str, document) -> Path:
        """Write ``name`` in the run directory atomically."""
        return write_json(self.path / name, document)

    # ------------------------------------------------------------------ result files
    def stamp(self) -> str:
        """The run's :data:`RUN_STAMP`: the SHA-256 of its ``config.json`` (written once, when
        the run starts)."""
        try:
            return hashlib.sha256(self.config_path.read_bytes()).hexdigest()
        except FileNotFoundError:
            raise UsageError(f"{self.config_path} not found: {self.path} is not a run directory "
                             "of pdecontrol") from None

    def _rewrite(self) -> str:
        return (f"write the run's files again with `pdecontrol {self.problem} {self.command} "
                f"--resume --out {self.path}`")

    @contextmanager
    def reading(self):
        """Within the block, a damaged result file is reported with the command that writes the
        run's files again."""
        try:
            yield
        except CorruptFileError as error:
            raise error.with_fix(self._rewrite()) from None

    def check_stamp(self, name: str, stamp) -> None:
        """Refuse the result file ``name`` when its ``stamp`` is not this run's."""
        if stamp != self.stamp():
            raise UsageError(f"{self.path / name} does not belong to the run in {self.path} "
                             f"(written by another run, or config.json was changed); "
                             f"{self._rewrite()}")

    def write_netcdf(self, name: str, dataset, *, format: str, groups=None) -> Path:
        """Write ``name`` in the run directory (:func:`pdecontrol.io.write_netcdf`) with the
        run's stamp."""
        return write_netcdf(self.path / name, dataset.assign_attrs({RUN_STAMP: self.stamp()}),
                            format=format, groups=groups)

    def read_netcdf(self, name: str, *, format: str):
        """The verified Dataset of a file written by :meth:`write_netcdf`, refused when damaged
        (:class:`~pdecontrol.io.CorruptFileError`) or of another run (:class:`UsageError`)."""
        with self.reading():
            dataset = read_netcdf(self.path / name, format=format)
        self.check_stamp(name, dataset.attrs.get(RUN_STAMP))
        return dataset
