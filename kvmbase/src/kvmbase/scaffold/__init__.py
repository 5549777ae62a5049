"""``kvmbase new-plugin``: generate the skeleton of an architecture plugin.

The files come from the templates in ``templates/`` (``string.Template``
syntax), rendered by :mod:`kvmbase.scaffold.render`; the click command is
:mod:`kvmbase.scaffold.command`.
"""

from kvmbase.scaffold.render import PluginNames, ScaffoldError, generate, plugin_names

__all__ = ["PluginNames", "ScaffoldError", "generate", "plugin_names"]
