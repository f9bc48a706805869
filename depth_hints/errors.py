"""The project's one error base class, and how every entry point reports it.

Every error a user can fix (a missing file, a bad flag, a corrupt hint) derives from
``DepthHintsError``; each entry point turns it into one line on stderr and exit code 2.
"""
from __future__ import annotations

import sys
from typing import Callable


class DepthHintsError(Exception):
    """A problem found in the user's input or files; the message names it and the fix."""


def run_entry_point(main: Callable[[], int | None], prog: str) -> int:
    """Run ``main``; a DepthHintsError becomes ``prog: error: <message>`` (one line) and 2."""
    try:
        code = main()
    except DepthHintsError as e:
        message = " ".join(str(e).split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    return 0 if code is None else int(code)
