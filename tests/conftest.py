"""Shared fixtures: a tiny KITTI-layout folder made in tmp_path.

The suite's assumptions (tests/README.md): it passes on any x86-64 CPU (AVX2 or AVX-512), with
the default kernels or ``ATEN_CPU_CAPABILITY=avx2``, and with 1 or 2 torch threads
(``DH_TEST_THREADS=1``). No expected value is a float pasted from one machine's run."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from depth_hints.hint_files import hint_file_path, save_hint

# DH_TEST_THREADS=N runs the suite with N torch threads (default: min(2, the cores'))
torch.set_num_threads(int(os.environ.get("DH_TEST_THREADS") or min(2, torch.get_num_threads())))

# torch.compile's kernels (tests/test_compiling.py) are cached per CPU capability: inductor
# compiles for the ISA that ATEN_CPU_CAPABILITY selects, but reused a kernel cached by a run with
# another capability (an AVX-512 kernel under ATEN_CPU_CAPABILITY=avx2 crashed with a
# segmentation fault on torch 2.14). A cache folder of the user's own is left alone.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    import getpass
    import tempfile
    try:
        _user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        _user = str(os.getuid())
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(
        tempfile.gettempdir(), f"torchinductor_{_user}_depth_hints_"
        f"{os.environ.get('ATEN_CPU_CAPABILITY', 'default')}")

FOLDER = "2011_09_26/2011_09_26_drive_0001_sync"


def make_kitti_tree(root, num_frames: int = 5, height: int = 64, width: int = 192, shift: int = 4,
                    with_hints: bool = True, ext: str = ".png", seed: int = 0):
    """KITTI raw layout with textured frames whose right view is the left shifted by ``shift``
    pixels (a fronto-parallel scene); hints hold the matching depth. Returns split lines."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, size=(height, width + num_frames * 2 + shift, 3))
    base = np.asarray(Image.fromarray(base.astype(np.uint8)).resize((width * 2, height * 2))
                      .resize((width + num_frames * 2 + shift, height)))
    for frame in range(num_frames):
        # a point at column x of the left view is at x - shift in the right view
        left = base[:, frame * 2: frame * 2 + width]
        right = base[:, frame * 2 + shift: frame * 2 + shift + width]
        for cam, img in (("image_02", left), ("image_03", right)):
            d = os.path.join(root, FOLDER, cam, "data")
            os.makedirs(d, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(img)).save(os.path.join(d, f"{frame:010d}{ext}"))
        if with_hints:
            depth = 0.58 * width * 0.1 / shift  # nominal-unit depth of a `shift`-pixel disparity
            for side in "lr":
                save_hint(hint_file_path(os.path.join(root, "depth_hints"), FOLDER, frame, side),
                          np.full((height, width), depth, np.float32))
    lines = [f"{FOLDER} {i} {side}" for i in range(1, num_frames - 1) for side in "lr"]
    split = os.path.join(root, "split")
    os.makedirs(split, exist_ok=True)
    for name in ("train_files.txt", "val_files.txt"):
        with open(os.path.join(split, name), "w") as f:
            f.write("\n".join(lines) + "\n")
    return lines


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors on shared CPUs: one thread is far faster than contended OpenMP threads.
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_kitti(tmp_path):
    """Path of a tiny KITTI-layout tree with hints and a split folder at <root>/split."""
    make_kitti_tree(str(tmp_path))
    return str(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def no_shard_environment():
    """A test run inside a SLURM array task or under torchrun must not shard the precompute
    runs of the tests (precompute.resolve_shard reads these variables)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                     "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_MAX", "RANK", "WORLD_SIZE",
                     "LOCAL_RANK"):
            patch.delenv(name, raising=False)
        yield
