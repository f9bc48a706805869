"""Training under torchrun (gloo, CPU): 2 processes equal 1 process with the same global batch,
a 2-"node" localhost run, the resumable sampler, preemption signals and mid-epoch resume."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from conftest import make_kitti_tree
from depth_hints import distributed
from depth_hints.options import OptionsError, parse_train
from depth_hints.trainer import Trainer, TrainingError, autocast_dtype, choose_channels_last

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = ("--height", "64", "--width", "96")  # in-process runs: small, still >1 pixel at stride 32

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "ddp_driver.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}


def _run(cmd, timeout=240):
    done = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _train_args(root, name, *extra):
    return ["--data_path", root, "--split", os.path.join(root, "split"), "--png", "--height", "64",
            "--width", "192", "--num_workers", "0", "--weights_init", "scratch", "--no_cuda",
            "--log_dir", os.path.join(root, "logs"), "--model_name", name, "--log_frequency", "1000",
            "--seed", "0", "--no_val", "--frame_ids", "0", "--use_stereo", *extra]


def _torchrun(nproc, *args):
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args]


def test_two_processes_with_sync_bn_equal_one_process_with_the_global_batch(tmp_path):
    """2 x batch 2 (--sync_bn, DDP) and 1 x batch 4 see the same 4 samples per step (fixed
    order, no augmentation, no auto-masking noise) and must take the same 3 Adam steps.

    Tolerance: the two runs sum in different orders (a batch of 4 in one convolution vs two of
    2 plus an all_reduce), so gradients differ by float32 rounding. Adam divides by sqrt(v):
    a gradient component at rounding level can change sign and move its weight by lr the other
    way, so a few weights differ by up to 2 lr per step. A tiny learning rate (1e-6) keeps
    those flips from perturbing later steps; then 90 % of the weights agree to 0.1 lr (measured:
    0.035 lr; without --sync_bn the median is 1.1 lr), every weight to 6 lr, the losses to 1e-6
    and the BatchNorm running statistics to 1e-4 (measured 6e-6; without --sync_bn 0.1)."""
    root = str(tmp_path)
    make_kitti_tree(root, num_frames=8)  # 12 samples: 3 steps of 4
    common = ["--fixed_order", "--learning_rate", "1e-6", "--num_epochs", "1", "--disable_automasking"]
    one, two = os.path.join(root, "one.pt"), os.path.join(root, "two.pt")
    _run([sys.executable, DRIVER, "--out", one, *common,
          *_train_args(root, "one", "--batch_size", "4")])
    _run(_torchrun(2, DRIVER, "--out", two, *common,
                   *_train_args(root, "two", "--batch_size", "2", "--sync_bn")))
    a, b = torch.load(one, weights_only=False), torch.load(two, weights_only=False)
    assert (a["world_size"], b["world_size"]) == (1, 2)
    assert len(a["summary"]["losses"]) == len(b["summary"]["losses"]) == 3
    assert b["summary"]["losses"] == pytest.approx(a["summary"]["losses"], rel=1e-6, abs=1e-6)
    lr = 1e-6
    weights, stats = [], []
    for key, value in a["state"].items():
        other = b["state"][key]
        if "running_" in key:
            stats.append((value - other).abs().max().item())
        elif value.dtype.is_floating_point and ".fc." not in key:
            weights.append((value - other).abs().flatten())
        else:
            assert torch.equal(value, other), key
    diff = torch.cat(weights)
    assert diff.max().item() <= 6 * lr
    assert torch.quantile(diff[:: max(1, diff.numel() // 1_000_000)], 0.9).item() <= 0.1 * lr
    assert max(stats) < 1e-4


def test_two_node_localhost_run_trains_and_saves_once(tmp_path):
    """--nnodes 2 --nproc_per_node 1 with a c10d rendezvous on 127.0.0.1: two agents, two ranks,
    one checkpoint written by rank 0 holding both ranks' (different) random states."""
    root = str(tmp_path)
    make_kitti_tree(root)
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
           "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "twonode",
           DRIVER, "--out", os.path.join(root, "out.pt"),
           *_train_args(root, "nodes", "--batch_size", "1", "--num_epochs", "1", "--num_steps", "2")]
    agents = [subprocess.Popen(cmd, env=_env(), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [agent.communicate(timeout=240)[0] for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    models = os.path.join(root, "logs", "nodes", "models")
    assert sorted(os.listdir(models)) == ["opt.json", "weights_0"]
    state = torch.load(os.path.join(models, "weights_0", "train_state.pth"), weights_only=False)
    assert (state["step"], state["batch_in_epoch"], state["world_size"]) == (2, 2, 2)
    assert len(state["rng"]) == 2  # per-rank augmentation streams, both saved
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    assert sum("global batch 2" in o for o in outputs) == 1  # printed by rank 0 only

    # --resume under DDP: both ranks continue from batch 2 of epoch 0 (3 batches per rank).
    done = _run(_torchrun(2, DRIVER, "--out", os.path.join(root, "resumed.pt"),
                          *_train_args(root, "nodes", "--batch_size", "1", "--num_epochs", "2",
                                       "--num_steps", "4", "--resume")))
    assert "resumed from" in done.stdout and "4 samples of the epoch done" in done.stdout
    assert sorted(os.listdir(models)) == ["opt.json", "weights_0", "weights_1"]
    state = torch.load(os.path.join(models, "weights_1", "train_state.pth"), weights_only=False)
    assert (state["epoch"], state["step"], state["batch_in_epoch"]) == (1, 4, 1)


def test_a_nan_on_one_rank_stops_every_rank(tmp_path):
    """Rank 1's loss turns NaN at step 2: both ranks learn it from the step's all_reduce and
    stop with the same error (neither waits forever in the next collective)."""
    root = str(tmp_path)
    make_kitti_tree(root)
    done = subprocess.run(_torchrun(2, DRIVER, "--out", os.path.join(root, "x.pt"), "--nan_on_rank", "1",
                                    *_train_args(root, "nan", "--batch_size", "1", "--num_epochs", "1")),
                          env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    assert (done.stdout + done.stderr).count("Loss became nan at step 2") == 2


def test_on_a_preemption_every_rank_returns_after_rank_0_has_saved(tmp_path):
    """Rank 1 is signalled after step 2; both stop, rank 0 writes weights_0 (slowed by 3 s),
    and rank 1 returns only once it is in place: an agent whose ranks exited early cannot
    have srun --kill-on-bad-exit kill rank 0 mid-write."""
    root = str(tmp_path)
    make_kitti_tree(root)
    out = os.path.join(root, "out.pt")
    done = _run(_torchrun(2, DRIVER, "--out", out, "--sigterm_on_rank", "1", "--slow_save", "3",
                          *_train_args(root, "race", "--batch_size", "1", "--num_epochs", "1000")))
    assert "a signal on another rank: saved step 2" in done.stdout
    summary = torch.load(out, weights_only=False)["summary"]
    assert summary["preempted"] and summary["steps"] == 2
    with open(out + ".rank1") as f:
        assert json.load(f) == ["opt.json", "weights_0"]


def test_sigterm_to_torchrun_and_its_whole_group_saves_a_resumable_checkpoint(tmp_path):
    """What SLURM's --signal=TERM@N and scancel do to a torchrun job: SIGTERM to the agent, the
    training processes and their loader workers at once. The agent forwards it, the workers
    ignore it, rank 0 writes the checkpoint; every training process exits 0 (the agent itself
    reports the signal)."""
    root = str(tmp_path)
    make_kitti_tree(root)
    args = _train_args(root, "tr", "--batch_size", "1", "--num_epochs", "1000", "--save_every_steps", "1",
                       "--num_workers", "1", *SMALL)
    proc = subprocess.Popen(_torchrun(2, os.path.join(ROOT, "train.py"), *args), env=_env(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    models = os.path.join(root, "logs", "tr", "models")
    marker = os.path.join(models, "weights_0", "train_state.pth")
    deadline = time.monotonic() + 180
    while not os.path.isfile(marker) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    out = proc.communicate(timeout=120)[0]
    assert "saved step" in out and "--resume" in out, out[-3000:]
    assert "killed by signal" not in out and "exitcode  : -" not in out, out[-3000:]
    newest = max((d for d in os.listdir(models) if d.startswith("weights_")),
                 key=lambda d: int(d.split("_")[1].split(".")[0]))
    state = torch.load(os.path.join(models, newest, "train_state.pth"), weights_only=False)
    assert state["world_size"] == 2 and state["samples_in_epoch"] == 2 * state["batch_in_epoch"]


# -- the sampler ------------------------------------------------------------------------------

def test_resumable_sampler_splits_the_epoch_and_skips_what_was_done():
    data = list(range(10))
    ranks = [distributed.ResumableSampler(data, distributed.DistContext(rank=r, world_size=2), seed=3)
             for r in (0, 1)]
    for s in ranks:
        s.set_epoch(4)
    orders = [list(s) for s in ranks]
    assert sorted(orders[0] + orders[1]) == data  # disjoint, complete (10 divides evenly)
    again = distributed.ResumableSampler(data, distributed.DistContext(rank=1, world_size=2), seed=3)
    again.set_epoch(4)
    again.set_start(4)  # 4 samples done, both ranks together: 2 of each rank's
    assert list(again) == orders[1][2:] and len(again) == 3
    # the same position on 3 processes: the 6 samples left, 2 each, none seen twice
    three = [distributed.ResumableSampler(data, distributed.DistContext(rank=r, world_size=3), seed=3)
             for r in range(3)]
    for s in three:
        s.set_epoch(4)
        s.set_start(4)
    rest = [i for s in three for i in s]
    assert [len(s) for s in three] == [2, 2, 2]
    assert sorted(rest) == sorted(set(data) - set(orders[0][:2] + orders[1][:2]))
    # 7 left on 2 processes: padded with the epoch's first sample, as DistributedSampler pads
    for s in ranks:
        s.set_start(3)
    assert [len(s) for s in ranks] == [4, 4]
    epoch_order = [i for pair in zip(*orders) for i in pair]  # rank r took every 2nd from r
    assert sorted(i for s in ranks for i in s) == sorted(epoch_order[3:] + epoch_order[:1])
    again.set_start(0)
    again.set_epoch(5)
    assert list(again) != orders[1]  # a new order each epoch


# -- preemption and mid-epoch resume ----------------------------------------------------------

def test_signal_mid_epoch_then_resume_equals_the_uninterrupted_run(tiny_kitti):
    """SIGUSR1 after step 5 (epoch 1, batch 2 of 3) saves and stops; --resume runs the last
    step with the same sample, augmentation draws, optimiser and scheduler state, so the weights
    equal an uninterrupted 6-step run's exactly (CPU, fixed seed, one process)."""
    base = ["--batch_size", "2", "--num_epochs", "2", "--scheduler_step_size", "1", *SMALL]
    full = Trainer(parse_train(_train_args(tiny_kitti, "full", *base)))
    full.train()

    cut = Trainer(parse_train(_train_args(tiny_kitti, "cut", *base)))
    original = cut.step

    def step_then_signal(batch):
        out = original(batch)
        if cut.state.step == 5:
            os.kill(os.getpid(), signal.SIGUSR1)
        return out
    cut.step = step_then_signal
    summary = cut.train()
    assert summary["preempted"] and summary["steps"] == 5
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored

    resumed = Trainer(parse_train(_train_args(tiny_kitti, "cut", *base, "--resume")))
    assert (resumed.state.epoch, resumed.state.step, resumed.state.samples_in_epoch) == (1, 5, 4)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    assert resumed.train()["steps"] == 6
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_sigterm_writes_a_checkpoint_and_exits_zero(tiny_kitti):
    """A real SIGTERM to `python train.py`: exit code 0 and a resumable checkpoint."""
    args = _train_args(tiny_kitti, "term", "--batch_size", "2", "--num_epochs", "1000",
                       "--save_every_steps", "1", *SMALL)
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *args], env=_env(),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marker = os.path.join(tiny_kitti, "logs", "term", "models", "weights_0", "train_state.pth")
    deadline = time.monotonic() + 180
    while not os.path.isfile(marker) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "SIGTERM" in out and "--resume" in out
    models = os.path.dirname(os.path.dirname(marker))
    folders = [d for d in os.listdir(models) if d.startswith("weights_")]
    newest = max(folders, key=lambda d: int(d.split("_")[1]))
    state = torch.load(os.path.join(models, newest, "train_state.pth"), weights_only=False)
    assert state["step"] >= 1 and state["step"] == 3 * state["epoch"] + state["batch_in_epoch"]


def test_sigterm_to_the_process_group_with_loader_workers_saves_and_exits_zero(tiny_kitti):
    """torchrun (os.killpg) and SLURM signal the loader workers too: they ignore it, the main
    process finishes its step, writes a resumable checkpoint and exits 0 (no "DataLoader
    worker ... killed by signal")."""
    args = _train_args(tiny_kitti, "group", "--batch_size", "2", "--num_epochs", "1000",
                       "--save_every_steps", "1", "--num_workers", "2", *SMALL)
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *args], env=_env(),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    models = os.path.join(tiny_kitti, "logs", "group", "models")
    marker = os.path.join(models, "weights_0", "train_state.pth")
    deadline = time.monotonic() + 180
    while not os.path.isfile(marker) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r" [1-9]\d* loader workers?\b", out)  # workers did run
    assert "killed by signal" not in out and "Traceback" not in out
    assert "SIGTERM" in out and "--resume" in out
    newest = max((d for d in os.listdir(models) if d.startswith("weights_")),
                 key=lambda d: int(d.split("_")[1].split(".")[0]))
    state = torch.load(os.path.join(models, newest, "train_state.pth"), weights_only=False)
    assert state["step"] >= 1 and state["step"] == 3 * state["epoch"] + state["batch_in_epoch"]


# -- precision, memory format, device ---------------------------------------------------------

class _Opt:
    def __init__(self, **kw):
        self.__dict__.update(dict(bf16=False, fp16=False, channels_last=False, no_channels_last=False), **kw)


def test_bf16_on_a_gpu_without_bf16_names_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    with pytest.raises(TrainingError, match="--fp16"):
        autocast_dtype(_Opt(bf16=True), torch.device("cuda"))
    assert autocast_dtype(_Opt(fp16=True), torch.device("cuda")) is torch.float16
    assert autocast_dtype(_Opt(bf16=True), torch.device("cpu")) is torch.bfloat16
    assert autocast_dtype(_Opt(), torch.device("cpu")) is None


def test_channels_last_by_device_and_flags():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert (choose_channels_last(_Opt(), cpu), choose_channels_last(_Opt(), cuda)) == (False, True)
    assert choose_channels_last(_Opt(channels_last=True), cpu) is True
    assert choose_channels_last(_Opt(no_channels_last=True), cuda) is False


@pytest.mark.parametrize("flags,names", [(["--bf16", "--fp16"], "--fp16"),
                                         (["--channels_last", "--no_channels_last"], "--channels_last"),
                                         (["--save_every_steps", "-1"], "--save_every_steps")])
def test_conflicting_scaling_flags_are_refused(tiny_kitti, flags, names):
    with pytest.raises(OptionsError, match=names):
        parse_train(_train_args(tiny_kitti, "x", *flags))


def test_cuda_build_without_gpu_says_so_once(monkeypatch, capsys):
    from depth_hints.options import device_from
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    assert device_from(False).type == "cpu"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no GPU" in out and "12.4" in out
    assert device_from(True).type == "cpu" and capsys.readouterr().out == ""


def test_fp16_step_on_cpu_keeps_float32_weights_and_a_close_loss(tiny_kitti, monkeypatch):
    """The float16 autocast + GradScaler path CUDA runs, exercised on the CPU (where the
    trainer refuses --fp16 for its speed: bypassed here)."""
    from depth_hints import trainer as trainer_module
    with pytest.raises(TrainingError, match="--bf16"):
        autocast_dtype(_Opt(fp16=True), torch.device("cpu"))
    monkeypatch.setattr(trainer_module, "autocast_dtype",
                        lambda opt, device: torch.float16 if opt.fp16 else None)
    argv = _train_args(tiny_kitti, "f", "--batch_size", "2", *SMALL)
    fp32 = Trainer(parse_train(argv))
    fp16 = Trainer(parse_train(argv + ["--fp16", "--model_name", "f16"]))
    fp16.model.load_state_dict(fp32.model.state_dict())
    batch = next(iter(torch.utils.data.DataLoader(fp32.val_set, batch_size=2)))
    with torch.no_grad():
        loss32 = fp32.process_batch(batch)[2]["loss"].item()
    _, out16, losses16 = fp16.step(batch)
    assert all(v.dtype == torch.float32 for v in out16.values())
    assert losses16["loss"].item() == pytest.approx(loss32, rel=0.02)
    assert fp16.scaler.is_enabled() and fp16.scaler.get_scale() > 1
    assert all(p.dtype == torch.float32 for p in fp16.model.parameters())


# -- every registered parameter trains or is excluded (DDP's reducer needs it) -----------------

@pytest.mark.parametrize("extra", [
    ["--frame_ids", "0", "-1", "1", "--use_stereo", "--use_depth_hints"],
    ["--frame_ids", "0", "-1", "1", "--pose_model_type", "shared"],
    ["--frame_ids", "0", "-1", "1", "--pose_model_type", "posecnn", "--pose_model_input", "all"],
    ["--frame_ids", "0", "-1", "1", "--predictive_mask", "--disable_automasking"],
])
def test_every_trainable_parameter_gets_a_gradient(tiny_kitti, extra):
    trainer = Trainer(parse_train(_train_args(tiny_kitti, "g", "--batch_size", "2", *SMALL) + extra))
    batch = next(iter(trainer.train_loader))
    _, _, losses = trainer.process_batch(batch)
    losses["loss"].backward()
    missing = [n for n, p in trainer.model.named_parameters() if p.requires_grad and p.grad is None]
    frozen = sorted(n for n, p in trainer.model.named_parameters() if not p.requires_grad)
    assert missing == []
    assert frozen and all(".encoder.fc." in n for n in frozen)  # only the classification heads
    keys = trainer.model.nets["encoder"].state_dict().keys()
    assert {"encoder.fc.weight", "encoder.fc.bias"} <= set(keys)  # monodepth2's keys kept


# -- the SLURM examples -----------------------------------------------------------------------

SBATCH = os.path.join(ROOT, "scripts", "slurm", "train_multinode.sbatch")
#: what torchrun forwards to its workers unless --signals_to_handle says otherwise
TORCHRUN_FORWARDS = {"TERM", "INT", "HUP", "QUIT"}


def _sbatch_text(path=SBATCH):
    with open(path) as f:
        return f.read()


def test_sbatch_signal_is_one_torchrun_forwards_and_the_trainer_handles():
    text = _sbatch_text()
    import re
    signals = re.findall(r"^#SBATCH --signal=(?:B:)?([A-Z0-9]+)@\d+", text, re.M)
    assert signals, "the example asks SLURM for a warning signal before the time limit"
    handled = {signal.Signals(s).name[3:] for s in distributed.PREEMPTION_SIGNALS}
    forwarded = set(TORCHRUN_FORWARDS)
    extra = re.search(r"--signals[_-]to[_-]handle[ =]\"?([A-Z0-9,]+)", text)
    if extra:
        forwarded = {s.removeprefix("SIG") for s in extra.group(1).split(",")}
    for name in signals:
        assert name.removeprefix("SIG") in forwarded & handled, name


def test_srun_gets_the_cpus_per_task_explicitly():
    """Slurm >= 22.05: srun no longer inherits --cpus-per-task from the allocation."""
    for name in os.listdir(os.path.join(ROOT, "scripts", "slurm")):
        text = _sbatch_text(os.path.join(ROOT, "scripts", "slurm", name))
        for line in text.splitlines():
            if line.lstrip().startswith("srun "):
                assert ("--cpus-per-task" in line or "export SRUN_CPUS_PER_TASK" in text), (name, line)


def _resume_block(text):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("for ") and "weights_" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "done")
    return "\n".join(lines[start:end + 1])


@pytest.mark.parametrize("folders,resumes", [
    ([], False), (["weights_3.tmp"], False), (["weights_3.tmp", "opt.json"], False),
    (["weights_0"], True), (["weights_2.old", "weights_2.tmp"], True), (["weights_12", "weights_13.tmp"], True),
])
def test_sbatch_resumes_only_from_a_complete_checkpoint(tmp_path, folders, resumes):
    """The example adds --resume when models/ holds a checkpoint --resume takes (weights_N, or
    weights_N.old left by a save stopped between its renames), never for a lone .tmp."""
    models = tmp_path / "logs" / "run" / "models"
    models.mkdir(parents=True)
    for name in folders:
        (models / name).mkdir()
    script = ("set -euo pipefail\nLOG_DIR=%s\nMODEL_NAME=run\nTRAIN_FLAGS=(--x)\n%s\necho \"${TRAIN_FLAGS[@]}\"\n"
              % (tmp_path / "logs", _resume_block(_sbatch_text())))
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert ("--resume" in done.stdout.split()) == resumes
    from depth_hints.trainer import latest_checkpoint
    assert (latest_checkpoint(str(models)) is not None) == resumes
