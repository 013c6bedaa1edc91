"""MkDocs hook: the page ``cli_reference.md``, the ``--help`` of every ``pdecontrol`` command.

Generated from :func:`pdecontrol.cli.build_parser` over the registered problems each time the
site is built, so it has no committed copy to fall out of date. ``python3
docs/hooks/cli_reference.py`` prints the page.
"""

import argparse
import functools
from importlib.metadata import entry_points

from pdecontrol.cli import ENTRY_POINT_GROUP, build_parser, registered_problems

PAGE = "cli_reference.md"
#: Help is wrapped at this width, whatever the terminal of the build.
WIDTH = 80


def on_files(files, config):
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files


def render() -> str:
    """The page: one section per command, its ``--help`` verbatim."""
    problems = registered_problems()
    declared = {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}
    if not declared or not declared <= problems.keys():
        raise RuntimeError(f"problems declared {sorted(declared)}, loaded {sorted(problems)}: "
                           "install the package (pip install -e .) before building the docs")
    lines = ["# Command-line reference", "",
             "The `--help` of every command, generated from `pdecontrol.cli.build_parser()` when "
             "the site is built. What the commands do and write: [Command line](cli.md).", ""]
    for words, parser in _commands(build_parser(problems), ("pdecontrol",)):
        parser.formatter_class = functools.partial(parser.formatter_class, width=WIDTH)
        lines += [f"## {' '.join(words)}", "", "```text", parser.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def _commands(parser, words):
    """``(words, parser)`` of ``parser`` and its subcommands, depth first."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _commands(subparser, words + (name,))


if __name__ == "__main__":
    print(render())
