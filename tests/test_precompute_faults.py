"""Precompute faults a cluster user meets: a worker killed mid-run, shards from several
sources, hints of another size, images of the other extension, and the scripts' error path."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from depth_hints import hint_files, precompute
from depth_hints.options import parse_precompute
from test_hints import FOLDER, HEIGHT, WIDTH, write_kitti

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def run_script(args, timeout=90, env_extra=None, cwd=None):
    """Run ``python *args`` in its own session; a run past ``timeout`` is killed with its
    whole process group (workers included) and fails the test as a hang."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]),
               OMP_NUM_THREADS="1", **(env_extra or {}))
    process = subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=cwd or ROOT,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{args[:2]} still running after {timeout} s: it hangs")
    return process.returncode, out, err


def error_lines(err: str) -> list:
    """stderr without tqdm's progress bars (carriage-return lines)."""
    return [line for line in err.replace("\r", "\n").splitlines()
            if line.strip() and "frame/s" not in line and "depth hints:" not in line]


# ----------------------------------------------------------------------------- a killed worker

def test_a_worker_killed_by_the_oom_killer_ends_the_run_with_one_line_keeping_the_rest(tmp_path):
    """A pool worker that dies (SIGKILL, as the OOM killer sends) must not hang the run: one
    line names the frames in flight, every file written is complete, and a re-run finishes."""
    root = tmp_path / "kitti"
    frames = tuple((f, "l") for f in range(6))
    split = write_kitti(root, frames=frames, gt=False)
    save = tmp_path / "hints"
    flags = ["--data_path", root, "--filenames", split, "--png", "--height", HEIGHT,
             "--width", WIDTH, "--save_path", save, "--no_cuda", "--num_workers", "2"]
    code, out, err = run_script(["-c", "import precompute_faults_helper as h; h.main()", "5",
                                 *flags])
    lines = error_lines(err)
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("precompute_depth_hints.py: error:"), err
    assert f"{FOLDER} 5 l" in lines[0] and "--num_workers" in lines[0]
    killed = Path(hint_files.hint_file_path(str(save), FOLDER, 5, "l"))
    assert not killed.exists()
    written = sorted(save.rglob("*.npy"))
    for path in written:  # whatever was written is complete
        hint_files.load_hint(str(path))
    assert not list(save.rglob("*.tmp*"))
    # The same command without the fault resumes: the files written are skipped.
    summary = precompute.precompute(parse_precompute([str(f) for f in flags]), progress=False,
                                    verbose=False)
    assert summary.ok and summary.skipped == len(written)
    assert summary.computed == len(frames) - len(written)
