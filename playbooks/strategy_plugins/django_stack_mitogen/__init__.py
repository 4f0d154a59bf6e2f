# Code that runs on the servers, not in the controller: Mitogen sends this package to a server's interpreter the
# first time the controller calls a function of it there (mitogen_linear.py registers it in the controller under
# this name; the folder's __init__.py is not a strategy plug-in, Ansible's loader skips it).
#
# A task whose module runs in a child of the server's interpreter (mitogen_linear.py says which) gets a child forked
# from the "fork parent", a pristine interpreter Mitogen keeps on each server. A child imports what the module needs
# through that parent, which asks the controller for each module it does not have yet and forwards it.
# Mitogen's fork copies the parent's table of those requests in flight into the new child, which shares the parent's
# importer: a child forked while the parent waited for `ansible_collections` (another task's child had asked)
# believes that request is its own, waits for an answer that only ever goes to the parent, and the run hangs
# forever. With several hosts' tasks delegated to one server at once (the agents' certificates signed on the
# monitoring host, each host at its own pace) it happened in about one run of the agents' play in three; a play
# of sixteen hosts' collection modules on one server hung every time (molecule's default scenario, test_common.py;
# on the control node's own Python, tests/test_mitogen_strategy.py, two runs in three).
# Here the child forgets, as soon as it is forked, the requests its parent had in flight: what it needs, it asks
# for itself.
import functools
import threading

import ansible_mitogen.target
import mitogen.core
import mitogen.parent


def _forget_the_parents_requests(importer):
    """In a child just forked: the requests for modules in flight are its parent's, not its own (a lock held by
    another of the parent's threads at the fork would never be released in the child either)."""
    importer._lock = threading.Lock()
    importer._callbacks = {}


@mitogen.core.takes_econtext
def spawn_isolated_child(econtext):
    """ansible_mitogen.target.spawn_isolated_child (a child of the fork parent for one task), whose child starts
    with no request of its parent's in flight."""
    mitogen.parent.upgrade_router(econtext)
    if not ansible_mitogen.target.FORK_SUPPORTED:
        return econtext.router.local()
    return econtext.router.fork(on_fork=functools.partial(_forget_the_parents_requests, econtext.importer))
