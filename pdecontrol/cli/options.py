"""Settings dataclasses as command-line options: one table row per option, parsed back.

A problem describes the options of its settings dataclass as :class:`SettingOption` rows;
:func:`add_setting_options` adds them to a parser (help shows the default of a settings instance,
or says where the default comes from), :func:`settings_from_args` builds the settings from a base
dict and the options given. Every option defaults to ``None`` in the parsed namespace, so that
"given" and "not given" stay apart (what ``--resume`` checks); a value that means ``None`` in the
settings (``--batch 0``: all examples; ``--opening-activation none``) parses to :data:`NONE`.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from .errors import UsageError

__all__ = ["SettingOption", "NONE", "add_setting_options", "settings_from_args", "given_fields"]


class _NoneGiven:
    """What an option given as 'none' (or '0' where that means all) parses to."""

    def __repr__(self) -> str:
        return "NONE"


#: Parsed value of an option given explicitly as its "none" spelling.
NONE = _NoneGiven()


@dataclass(frozen=True)
class SettingOption:
    """One command-line option of a settings field.

    Attributes
    ----------
    flag : str
        e.g. ``"--channels"``.
    field : str
        The settings field (and the namespace attribute).
    type : type
        ``int``, ``float`` or ``str``.
    help : str
    group : str
        Argument group in ``--help``.
    choices : tuple, optional
        Allowed values (shown instead of a metavar).
    none_spelling : str, optional
        The text that means ``None`` in the settings (e.g. ``"0"`` for "all examples",
        ``"none"``); parsed to :data:`NONE`.
    none_shown : str, optional
        How a ``None`` default reads in ``--help`` (e.g. ``"all"``).
    """

    flag: str
    field: str
    type: type
    help: str
    group: str = "settings"
    choices: tuple | None = None
    none_spelling: str | None = None
    none_shown: str | None = None

    def parse(self, text: str):
        if self.none_spelling is not None and text == self.none_spelling:
            return NONE
        try:
            return self.type(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {self.type.__name__}, got {text!r}") from None


def add_setting_options(parser, options, defaults=None, *, defaults_from: str | None = None):
    """Add one option per row; help shows the value of ``defaults`` (a settings instance), or
    says the default comes from ``defaults_from`` (e.g. ``"--config"``)."""
    groups = {}
    for option in options:
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        if defaults_from is not None:
            shown = f"that of {defaults_from}"
        else:
            shown = getattr(defaults, option.field)
            if shown is None:
                shown = option.none_shown or option.none_spelling or "none"
        groups[option.group].add_argument(
            option.flag,
            dest=option.field,
            default=None,
            choices=None if option.choices is None else tuple(option.choices) + (
                (NONE,) if option.none_spelling in option.choices else ()),
            metavar=("{" + ",".join(map(str, option.choices)) + "}") if option.choices else
            option.type.__name__.upper(),
            type=option.parse,
            help=f"{option.help} (default {shown})",
        )


def given_fields(args, options) -> dict:
    """``field -> value`` of the options given on the command line (:data:`NONE` as ``None``)."""
    given = {}
    for option in options:
        value = getattr(args, option.field, None)
        if value is not None:
            given[option.field] = None if value is NONE else value
    return given


def settings_from_args(args, options, base: dict, factory):
    """``factory(**values)``: ``base`` with the given options applied; a rejected value is a
    :class:`UsageError` naming the option (``Factory.field`` in the message becomes the flag,
    ``setting field`` for a field without one)."""
    values = dict(base)
    values.update(given_fields(args, options))
    try:
        return factory(**values)
    except (TypeError, ValueError) as error:
        message = str(error)
        for option in sorted(options, key=lambda o: -len(o.field)):
            message = re.sub(rf"\b{factory.__name__}\.{option.field}\b", option.flag, message)
        raise UsageError(message.replace(f"{factory.__name__}.", "setting ")) from None
