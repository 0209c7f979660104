"""
What the formula's salt-ssh wrappers share: where the formula's ``_utils``
are, the loader of those utils on the controller, and the object behind a
loader dunder. Not a wrapper itself (``__virtual__`` says so to Salt's
loader): each wrapper imports it from beside itself.
"""

import os

import salt.loader
from salt.loader.context import NamedLoaderContext

UTILS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "_utils")


def __virtual__():
    return (False, "litellm_wrapper_common holds what the litellm wrappers share; it is not a module")


def virtual(name):
    """A wrapper's ``__virtual__`` answer: its name, or why it cannot load here."""
    if not os.path.isfile(os.path.join(UTILS_DIR, "litellm_steps.py")):
        return (False, f"the {name} wrapper needs the formula's _utils beside it ({UTILS_DIR})")
    return name


def loaded(dunder):
    """The object behind a loader dunder: Salt's proxies resolve only in their module's own context."""
    return dunder.value() if isinstance(dunder, NamedLoaderContext) else dunder


def utils(opts, context):
    """The formula's ``_utils`` loaded on the controller, once per wrapper context."""
    context = loaded(context)
    if "litellm_steps.utils" not in context:
        opts = dict(loaded(opts))
        opts["utils_dirs"] = [UTILS_DIR]
        context["litellm_steps.utils"] = salt.loader.utils(opts)
    return context["litellm_steps.utils"]
