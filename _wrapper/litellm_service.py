"""
salt-ssh wrapper: ``litellm_service.drain_seconds``, which service/running.sls
calls while it renders, computed on the controller by the formula's
``_utils`` (``litellm_unit.drain_seconds``, the same code the target's module
runs). It is pure; on the target each call was one more ssh round trip and
salt-call before the state run (issue 17). Every other ``litellm_service``
function runs on the target.

Loaded through ``wrapper_dirs`` (``etc/salt/master``, also in ``ssh_minion_opts``).
"""

import os
import sys

__virtualname__ = "litellm_service"

_HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:0] = [] if _HERE in sys.path else [_HERE]  # the wrappers' shared file is beside them
import litellm_wrapper_common as _common  # noqa: E402


def __virtual__():
    return _common.virtual(__virtualname__)


def drain_seconds(settings):
    """
    TimeoutStopSec= of the unit for the merged settings, or None when they do
    not say it (as the target's ``litellm_service.drain_seconds``).

    CLI Example:

    .. code-block:: bash

        salt-ssh gateway litellm_service.drain_seconds '{"service": {"graceful_timeout": 600}}'
    """
    return _common.utils(__opts__, __context__)["litellm_unit.drain_seconds"](settings)
