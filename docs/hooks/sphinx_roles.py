"""Griffe extension: Sphinx roles in docstrings (:class:`~a.B`) become cross-references.

A target is looked up as written, then relative to the documented object and its parents (as
Sphinx does); found, it becomes an optional autoref (a link where the object is rendered, plain
code elsewhere), not found, plain code. ``~`` shows the last component only.
"""

import re

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([\w.]+)`")


class SphinxRoles(griffe.Extension):
    def on_object(self, *, obj, loader, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(lambda m: _reference(m, obj, loader),
                                           obj.docstring.value)


def _reference(match, obj, loader) -> str:
    short, target = match.groups()
    title = target.rsplit(".", 1)[-1] if short else target
    scopes, scope = [""], obj
    while scope is not None:
        scopes.append(scope.path + ".")
        scope = scope.parent
    for prefix in scopes:
        try:
            found = loader.modules_collection[prefix + target]
        except (KeyError, griffe.AliasResolutionError):
            continue
        return f'<autoref identifier="{found.path}" optional><code>{title}</code></autoref>'
    return f"`{title}`"
