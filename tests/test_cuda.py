"""GPU checks, marked `cuda`: skipped on machines without a CUDA GPU (so never part of the
CPU suite's pass/fail), run by `make gpu-check` / scripts/gpu_check.py."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from depth_hints.options import parse_train
from depth_hints.trainer import Trainer

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _args(root, name, *extra):
    return ["--data_path", root, "--split", os.path.join(root, "split"), "--png", "--height", "64",
            "--width", "192", "--batch_size", "2", "--num_workers", "2", "--weights_init", "scratch",
            "--log_dir", os.path.join(root, "logs"), "--model_name", name, "--log_frequency", "1000",
            "--seed", "0", "--no_val", "--frame_ids", "0", "-1", "1", "--use_stereo",
            "--use_depth_hints", *extra]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_few_gpu_steps_are_finite_and_lower_the_loss(tiny_kitti, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16 (--bf16 refuses it, naming --fp16)")
    extra = [] if precision == "fp32" else [f"--{precision}"]
    trainer = Trainer(parse_train(_args(tiny_kitti, precision, "--num_epochs", "5", *extra)))
    assert trainer.device.type == "cuda" and trainer.channels_last  # the CUDA default
    fixed = next(iter(torch.utils.data.DataLoader(trainer.val_set, batch_size=6)))

    def fixed_loss():
        trainer.model.eval()
        with torch.no_grad():
            value = trainer.process_batch(fixed, model=trainer.model)[2]["loss"].item()
        trainer.model.train()
        return value
    before = fixed_loss()
    summary = trainer.train()
    assert summary["steps"] == 15 and np.isfinite(summary["losses"]).all()
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert fixed_loss() < before


def test_ddp_on_every_visible_gpu(tiny_kitti):
    """torchrun with one process per visible GPU (nccl, SyncBatchNorm): trains and saves."""
    n = torch.cuda.device_count()
    out = os.path.join(tiny_kitti, "ddp.pt")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
           "--master_addr", "127.0.0.1", "--master_port", "29631",
           os.path.join(ROOT, "tests", "ddp_driver.py"), "--out", out,
           *_args(tiny_kitti, "ddp", "--batch_size", "1", "--num_epochs", "1", "--num_steps", "2",
                  "--sync_bn")]
    done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": ROOT}, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = torch.load(out, weights_only=False)
    assert result["world_size"] == n and result["summary"]["steps"] == 2
    assert np.isfinite(result["summary"]["losses"]).all()
    assert f"global batch {n}" in done.stdout


@pytest.mark.parametrize("side", ["l", "r"])
def test_gpu_hint_pick_equals_cpu(side):
    """The one picker on CUDA (fixed tiles, every candidate) against a CPU worker's pick
    (small tiles, tied candidates skipped): equal up to near-ties. Tolerance: where the winners
    differ, their photometric errors (both computed on the CPU, in [0, 1]) are at most
    TIE_TOLERANCE = 1e-4 apart (float32 sums in another order on the GPU), and at most 0.1 % of
    the pixels differ."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from benchmark_pick_device import TIE_TOLERANCE, agreement, candidate_errors
    from depth_hints import fused_sgm
    from test_hints import make_scene
    left, right, _, _ = make_scene(seed=5)
    target, other = (left, right) if side == "l" else (right, left)
    candidates = fused_sgm.match_view(target, other, side)[fused_sgm.distinct_indices(True)]
    t, o = target.astype(np.float32) / 255.0, other.astype(np.float32) / 255.0
    cpu_disparity, cpu_winner = fused_sgm.fuse_candidates(t, o, candidates, side)
    errors = candidate_errors(t, o, candidates, side)
    for tile in (fused_sgm.DEVICE_TILE, (16, 100)):  # one tile; several ragged ones
        disparity, winner = fused_sgm.fuse_candidates(t, o, candidates, side, tile=tile,
                                                      device="cuda", skip_tied=False)
        found = agreement(errors, cpu_winner, winner)
        assert found["differing_pixels"] <= 1e-3 and found["max_error_gap"] <= TIE_TOLERANCE
        same = winner == cpu_winner
        np.testing.assert_array_equal(disparity[same], cpu_disparity[same])


def test_precompute_picks_on_the_gpu_in_one_consumer(tmp_path):
    """--pick_device cuda end to end (threads match, the main process picks on the GPU):
    the hints equal the CPU run's up to near-ties."""
    from depth_hints import hint_files, precompute
    from depth_hints.options import parse_precompute
    from test_hints import HEIGHT, WIDTH, hint_paths, write_kitti
    split = write_kitti(tmp_path, gt=False)
    runs = {}
    for device in ("cpu", "cuda"):
        options = parse_precompute(["--data_path", str(tmp_path), "--filenames", str(split),
                                    "--png", "--height", str(HEIGHT), "--width", str(WIDTH),
                                    "--num_workers", "0", "--save_path", str(tmp_path / device),
                                    "--pick_device", device])
        runs[device] = precompute.precompute(options, progress=False, verbose=False, threads=2)
        assert runs[device].ok and runs[device].computed == 3
    assert "pick on cuda:0 in the main process" in runs["cuda"].parallelism
    for cpu_path, gpu_path in zip(hint_paths(tmp_path / "cpu"), hint_paths(tmp_path / "cuda")):
        cpu, gpu = hint_files.load_hint(str(cpu_path)), hint_files.load_hint(str(gpu_path))
        assert np.mean(cpu == gpu) >= 0.999
