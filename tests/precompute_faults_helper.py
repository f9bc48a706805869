"""Fault injection for tests/test_precompute_faults.py, importable by the precompute's worker
processes (they fork from a fork server whose sys.path holds this folder, and unpickle the job's
layout by module name: a class defined in a test's ``__main__`` would not be found there).

    python -c "import precompute_faults_helper as h; h.main()" KILL_FRAME <precompute flags>

runs ``precompute_depth_hints.main`` with a KITTI layout whose worker processes SIGKILL
themselves (as the out-of-memory killer does) when asked for frame KILL_FRAME's images."""
from __future__ import annotations

import os
import signal
import sys

from datasets.kitti_raw import KittiRawLayout


class KillingLayout(KittiRawLayout):
    """KITTI raw; a process other than ``main_pid`` dies on frame ``kill_frame``."""

    def __init__(self, data_path, img_ext=".jpg", kill_frame=-1, main_pid=-1):
        super().__init__(data_path, img_ext=img_ext)
        self.kill_frame, self.main_pid = kill_frame, main_pid

    def stereo_image_paths(self, sample):
        if sample.frame_index == self.kill_frame and os.getpid() != self.main_pid:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().stereo_image_paths(sample)


def main() -> None:
    import precompute_depth_hints
    from depth_hints import precompute
    kill_frame, argv = int(sys.argv[1]), sys.argv[2:]

    def make_layout(name, data_path, img_ext=".jpg", **_):
        assert name == "kitti"
        return KillingLayout(data_path, img_ext, kill_frame, os.getpid())

    precompute.make_layout = make_layout
    sys.exit(precompute_depth_hints.main(argv))
