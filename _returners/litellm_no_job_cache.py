"""
A master job cache that keeps nothing: the controller's ``master_job_cache``
(etc/salt/master). salt-ssh stores every call's return in the master job
cache, and Salt's default (``local_cache``) writes it to files under the
cachedir with the process's umask (0644 under 0755 directories): the return of
``salt-ssh <target> pillar.items`` is the decrypted pillar, master key, client
keys and TLS key included. salt-ssh prints every return itself and never
reads the cache back, so this one gives job IDs and stores nothing.

.. code-block:: yaml

    # etc/salt/master
    returner_dirs:
      - _returners
    master_job_cache: litellm_no_job_cache

(``salt-run jobs.lookup_jid`` then finds no salt-ssh job: run the command again.)
"""

import salt.utils.jid

__virtualname__ = "litellm_no_job_cache"


def __virtual__():
    return __virtualname__


def prep_jid(nocache=False, passed_jid=None):  # pylint: disable=unused-argument
    """
    A job ID (the one passed, else a new one); nothing is written.

    CLI Example: none, salt-ssh calls it (``master_job_cache: litellm_no_job_cache``).
    """
    return passed_jid if passed_jid is not None else salt.utils.jid.gen_jid(__opts__)


def save_load(jid, load, minions=None):  # pylint: disable=unused-argument
    """The job's arguments: not kept."""


def save_minions(jid, minions, syndic_id=None):  # pylint: disable=unused-argument
    """The job's targets: not kept."""


def returner(ret):  # pylint: disable=unused-argument
    """A target's return (the decrypted pillar for ``pillar.items``): not kept."""


def get_load(jid):  # pylint: disable=unused-argument
    """Nothing is kept: no job's arguments."""
    return {}


def get_jid(jid):  # pylint: disable=unused-argument
    """Nothing is kept: no job's returns."""
    return {}


def get_jids():
    """Nothing is kept: no jobs."""
    return {}


def clean_old_jobs():
    """Nothing to clean."""
