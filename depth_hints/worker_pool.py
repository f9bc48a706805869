"""How the precompute starts its worker processes, and starting that early.

Workers fork from a fork server that has imported ``depth_hints.precompute`` (torch, OpenCV)
once; where there is no fork server (Windows, macOS builds without it) they are spawned. A plain
``fork`` of the main process is not used: it deadlocks once OpenCV or torch have started their
thread pools there. This module imports nothing heavy, so that the entry point can start the
fork server first and let its imports run beside its own (about 2 s of start-up saved on a
2-core machine)."""
from __future__ import annotations

import multiprocessing

#: what the fork server imports once, for every worker it forks
PRELOAD = ["depth_hints.precompute"]


def pool_context():
    """The multiprocessing context the precompute's pool uses (forkserver, else spawn)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def start_early() -> bool:
    """Start the fork server now (with its preload) if this platform has one; returns whether it
    did. Idempotent; a later pool reuses the running server."""
    context = pool_context()
    if context.get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver
    forkserver.ensure_running()
    return True
