"""The child processes reportbot starts (the PDF workers, the sandbox's vendor simulators) end when
their parent decides, and with it.

How each ends with its parent, even one killed by SIGKILL, is said where it is started
(``reporting.engine``: the kernel's parent-death signal; ``connectors.sim.farm``: its pipe to the
parent reaching end-of-file). What they share is here: a Ctrl-C in a terminal is sent to the whole
foreground process group, and a child that took it died at once, with a traceback, while its
parent was still stopping in order and needed it (a render, a simulator's answer).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigint_ignored_by_children() -> Iterator[None]:
    """Processes started inside this block ignore SIGINT from their first instruction on: an
    ignored signal stays ignored across ``exec``, and Python then installs no KeyboardInterrupt
    handler. Only the parent acts on Ctrl-C, and stops them in order. The parent ignores it too for
    the moment the block lasts (a Ctrl-C in that millisecond is lost: press it again). Outside the
    main thread, where signal handlers cannot be changed, nothing is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
