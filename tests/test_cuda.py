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


def test_gpu_hint_pick_equals_cpu():
    # TODO(issue 11, precompute half): the per-pixel pick on the GPU equals the CPU's (state the
    # tolerance: near-ties may flip). Filled in by the helper who moves the pick to CUDA.
    pytest.skip("TODO: GPU per-pixel hint pick == CPU pick (precompute half of issue 11)")
