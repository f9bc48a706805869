"""Few-step training runs on a tiny KITTI-layout folder, checkpoints, resume and bad inputs."""
import json
import os

import numpy as np
import pytest
import torch

import train as train_script
from depth_hints import checkpoints
from depth_hints.options import OptionsError, parse_train
from depth_hints.trainer import Trainer, TrainingError
from conftest import FOLDER

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _args(root, name, *extra):
    return ["--data_path", root, "--split", os.path.join(root, "split"), "--png", "--height", "64",
            "--width", "192", "--batch_size", "2", "--num_workers", "0", "--weights_init", "scratch",
            "--log_dir", os.path.join(root, "logs"), "--model_name", name, "--log_frequency", "1000",
            "--seed", "0", "--learning_rate", "1e-4", "--no_val", "--no_cuda", *extra]


@pytest.mark.parametrize("name,extra", [
    ("stereo_hints", ["--frame_ids", "0", "--use_stereo", "--use_depth_hints"]),
    ("mono", ["--frame_ids", "0", "-1", "1"]),
    ("mono_stereo", ["--frame_ids", "0", "-1", "1", "--use_stereo"]),
    ("mono_posecnn", ["--frame_ids", "0", "-1", "1", "--pose_model_type", "posecnn"]),
    ("mono_shared", ["--frame_ids", "0", "-1", "1", "--pose_model_type", "shared"]),
])
def test_few_steps_lower_the_loss_and_weights_reload(tiny_kitti, name, extra):
    opt = parse_train(_args(tiny_kitti, name, "--num_epochs", "4", *extra))
    trainer = Trainer(opt)
    fixed = next(iter(torch.utils.data.DataLoader(trainer.val_set, batch_size=6)))  # no augmentation

    def fixed_loss():
        with torch.no_grad():
            return trainer.process_batch(fixed)[2]["loss"].item()
    before = fixed_loss()
    summary = trainer.train()
    assert summary["steps"] == 12 and np.isfinite(summary["losses"]).all()
    folder = os.path.join(tiny_kitti, "logs", name, "models", "weights_3")
    assert sorted(os.listdir(folder)) == sorted(
        ["encoder.pth", "depth.pth", "adam.pth", "train_state.pth", "opt.json"]
        + {"separate_resnet": ["pose_encoder.pth", "pose.pth"], "posecnn": ["pose.pth"],
           "shared": ["pose.pth"]}[opt.pose_model_type] * ("-1" in extra))
    encoder, decoder, info = checkpoints.load_depth_model(folder)
    assert (info.height, info.width, info.num_layers) == (64, 192, 18)
    x = torch.rand(1, 3, 64, 192)
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model.nets["depth"](trainer.model.nets["encoder"](x))[("disp", 0)]
        torch.testing.assert_close(decoder(encoder(x))[("disp", 0)], expected)
    with open(os.path.join(folder, "opt.json")) as f:
        assert json.load(f)["model_name"] == name
    trainer.model.train()
    assert fixed_loss() < before


def test_resume_restores_optimiser_scheduler_and_epoch(tiny_kitti):
    base = ["--frame_ids", "0", "--use_stereo", "--scheduler_step_size", "1"]
    first = Trainer(parse_train(_args(tiny_kitti, "r", "--num_epochs", "1", *base)))
    first.train()
    resumed = Trainer(parse_train(_args(tiny_kitti, "r", "--num_epochs", "2", "--resume", *base)))
    assert resumed.state.epoch == 1 and resumed.state.step == 3
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)  # decayed after epoch 0
    saved = first.optimizer.state_dict()["state"]
    loaded = resumed.optimizer.state_dict()["state"]
    torch.testing.assert_close(loaded[0]["exp_avg"], saved[0]["exp_avg"])
    summary = resumed.train()
    assert summary["steps"] == 6 and os.path.isdir(os.path.join(tiny_kitti, "logs", "r", "models", "weights_1"))


def _tamper(folder, name, key, value):
    path = os.path.join(folder, f"{name}.pth")
    state = torch.load(path)
    if value is None:
        del state[key]
    else:
        state[key] = value
    torch.save(state, path)


def _without_notes(err: str) -> str:
    """stderr without the start-up notes (e.g. a CUDA build that sees no GPU says so)."""
    return "".join(line for line in err.splitlines(keepends=True) if not line.startswith("note: "))


@pytest.mark.parametrize("change", ["shape", "missing"])
def test_resume_is_strict_and_names_the_file_and_tensor(tiny_kitti, capsys, change):
    base = ["--frame_ids", "0", "--use_stereo", "--num_epochs", "2"]
    Trainer(parse_train(_args(tiny_kitti, "s", "--num_steps", "1", *base))).train()
    folder = os.path.join(tiny_kitti, "logs", "s", "models", "weights_0")
    key = "decoder.10.conv.weight"
    _tamper(folder, "depth", key, torch.zeros(2, 16, 3, 3) if change == "shape" else None)
    capsys.readouterr()
    code = train_script.main(_args(tiny_kitti, "s", "--resume", *base))
    err = _without_notes(capsys.readouterr().err)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert os.path.join(folder, "depth.pth") in err and key in err
    if change == "shape":
        assert "shape (2, 16, 3, 3) in the file, (1, 16, 3, 3) in the network" in err
    else:
        assert f"{key} (not in the file)" in err


def test_fine_tuning_is_lenient_and_prints_what_it_skipped(tiny_kitti, capsys):
    base = ["--frame_ids", "0", "--use_stereo", "--num_epochs", "1"]
    Trainer(parse_train(_args(tiny_kitti, "f", "--num_steps", "1", *base))).train()
    folder = os.path.join(tiny_kitti, "logs", "f", "models", "weights_0")
    _tamper(folder, "depth", "decoder.10.conv.weight", torch.zeros(2, 16, 3, 3))
    capsys.readouterr()
    tuned = Trainer(parse_train(_args(tiny_kitti, "g", "--load_weights_folder", folder,
                                      "--models_to_load", "encoder", "depth", *base)))
    out = capsys.readouterr().out
    assert "depth.pth" in out and "decoder.10.conv.weight (shape (2, 16, 3, 3) in the file" in out
    saved = torch.load(os.path.join(folder, "depth.pth"))
    own = tuned.model.nets["depth"].state_dict()
    torch.testing.assert_close(own["decoder.0.conv.conv.weight"], saved["decoder.0.conv.conv.weight"])
    assert own["decoder.10.conv.weight"].shape == (1, 16, 3, 3)  # kept its initialisation


def test_validation_runs_in_eval_mode_without_gradients_at_the_log_steps(tiny_kitti):
    argv = [a for a in _args(tiny_kitti, "v", "--num_epochs", "2", "--frame_ids", "0", "--use_stereo",
                             "--use_depth_hints") if a != "--no_val"]
    argv[argv.index("--log_frequency") + 1] = "2"
    trainer = Trainer(parse_train(argv))
    seen = []
    original = trainer.process_batch

    def spy(batch, **kwargs):
        result = original(batch, **kwargs)
        seen.append((trainer.state.step, trainer.model.training, torch.is_grad_enabled(),
                     result[2]["loss"].requires_grad))
        return result
    trainer.process_batch = spy
    trainer.train()
    validations = [s for s in seen if not s[1]]
    assert [s[0] for s in validations] == [1, 2, 4, 6]
    assert all(not grad and not requires for _, _, grad, requires in validations)
    assert [s for s in seen if s[1]] == [(i, True, True, True) for i in range(6)]
    events = os.listdir(os.path.join(tiny_kitti, "logs", "v", "val"))
    assert events and all(e.startswith("events.out.tfevents") for e in events)


def test_scheduler_decays_at_the_intended_epoch(tiny_kitti):
    trainer = Trainer(parse_train(_args(tiny_kitti, "lr", "--num_epochs", "3", "--frame_ids", "0",
                                        "--use_stereo", "--scheduler_step_size", "2")))
    lrs = []
    original = trainer.process_batch

    def spy(batch):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        return original(batch)
    trainer.process_batch = spy
    trainer.train()
    assert lrs == pytest.approx([1e-4] * 6 + [1e-5] * 3)  # epochs 0, 1 at the full rate


def test_bf16_autocast_keeps_float32_outputs_poses_and_a_close_loss(tiny_kitti):
    argv = _args(tiny_kitti, "bf", "--frame_ids", "0", "-1", "1", "--use_stereo", "--use_depth_hints")
    fp32 = Trainer(parse_train(argv))
    bf16 = Trainer(parse_train(argv + ["--bf16", "--model_name", "bf16"]))
    bf16.model.load_state_dict(fp32.model.state_dict())
    batch = next(iter(torch.utils.data.DataLoader(fp32.val_set, batch_size=2)))
    with torch.no_grad():
        _, out32, loss32 = fp32.process_batch(batch)
        _, out16, loss16 = bf16.process_batch(batch)
    assert all(v.dtype == torch.float32 for v in out16.values())
    torch.testing.assert_close(out16[("cam_T_cam", 0, -1)], out32[("cam_T_cam", 0, -1)], atol=2e-3, rtol=0)
    assert loss16["loss"].item() == pytest.approx(loss32["loss"].item(), rel=0.05)
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())


def test_num_steps_stops_early_and_saves(tiny_kitti):
    summary = Trainer(parse_train(_args(tiny_kitti, "n", "--num_epochs", "5", "--num_steps", "2",
                                        "--frame_ids", "0", "--use_stereo"))).train()
    assert summary["steps"] == 2
    assert os.path.isdir(os.path.join(tiny_kitti, "logs", "n", "models", "weights_0"))


def test_fine_tune_from_weights_folder(tiny_kitti):
    Trainer(parse_train(_args(tiny_kitti, "a", "--num_epochs", "1", "--frame_ids", "0", "--use_stereo"))).train()
    folder = os.path.join(tiny_kitti, "logs", "a", "models", "weights_0")
    b = Trainer(parse_train(_args(tiny_kitti, "b", "--num_epochs", "1", "--frame_ids", "0", "--use_stereo",
                                  "--load_weights_folder", folder, "--models_to_load", "encoder", "depth")))
    state = torch.load(os.path.join(folder, "depth.pth"))
    torch.testing.assert_close(b.model.nets["depth"].state_dict()["decoder.10.conv.weight"],
                               state["decoder.10.conv.weight"])


# -- bad inputs: one line naming the file or flag, before any training ------------------------

def _main_error(capsys, argv):
    code = train_script.main(argv)
    err = capsys.readouterr().err
    assert code != 0
    return err


def test_hints_without_stereo_is_refused(tiny_kitti, capsys):
    err = _main_error(capsys, _args(tiny_kitti, "x", "--frame_ids", "0", "-1", "1", "--use_depth_hints"))
    assert "--use_depth_hints" in err and "--use_stereo" in err


def test_predictive_mask_needs_disable_automasking(tiny_kitti, capsys):
    err = _main_error(capsys, _args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo", "--predictive_mask"))
    assert "--predictive_mask" in err and "--disable_automasking" in err
    opt = parse_train(_args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo", "--predictive_mask",
                            "--disable_automasking"))
    assert opt.predictive_mask and opt.disable_automasking


def test_v1_multiscale_with_hints_is_refused(tiny_kitti, capsys):
    err = _main_error(capsys, _args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo", "--use_depth_hints",
                                    "--v1_multiscale"))
    assert "--v1_multiscale" in err and "--use_depth_hints" in err
    assert parse_train(_args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo", "--v1_multiscale")).v1_multiscale


def test_a_dataset_error_inside_training_is_one_line_and_exit_2(tiny_kitti, capsys):
    """A SceneFlow error raised while building the datasets reaches train.main as exit code 2
    and one stderr line, no traceback."""
    code = train_script.main(_args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo", "--dataset", "sceneflow"))
    err = _without_notes(capsys.readouterr().err)
    assert code == 2
    assert err.startswith("train.py: error: ") and len(err.strip().splitlines()) == 1
    assert "unknown SceneFlow subset '2011_09_26'" in err and "Traceback" not in err


def test_size_not_multiple_of_32(tiny_kitti):
    with pytest.raises(OptionsError, match="--height 100"):
        parse_train(_args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo")[:-0 or None] + ["--height", "100"])


def test_missing_data_path(tmp_path, capsys):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "split"))
    for n in ("train_files.txt", "val_files.txt"):
        open(os.path.join(root, "split", n), "w").write(f"{FOLDER} 1 l\n")
    err = _main_error(capsys, _args(root, "x", "--frame_ids", "0", "--use_stereo") + ["--data_path", root + "/nope"])
    assert "nope" in err


def test_missing_hint_files_stop_before_training(tiny_kitti, capsys):
    err = _main_error(capsys, _args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo", "--use_depth_hints",
                                    "--depth_hint_path", os.path.join(tiny_kitti, "no_hints")))
    assert "no_hints" in err and "precompute_depth_hints.py" in err


def test_truncated_hint_of_a_later_sample_stops_before_training(tiny_kitti, capsys):
    """Every hint's header is read at start, not only the first sample's file."""
    from depth_hints.hint_files import hint_file_path
    last = hint_file_path(os.path.join(tiny_kitti, "depth_hints"), FOLDER, 3, "r")
    with open(last, "rb") as f:
        data = f.read()
    with open(last, "wb") as f:
        f.write(data[:-100])
    err = _main_error(capsys, _args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo",
                                    "--use_depth_hints"))
    assert "1 of 6 hint files" in err and last in err and "--verify" in err
    assert "precompute_depth_hints.py --data_path" in err


def test_malformed_split_file(tiny_kitti, capsys):
    with open(os.path.join(tiny_kitti, "split", "train_files.txt"), "a") as f:
        f.write("just-a-folder\n")
    err = _main_error(capsys, _args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo"))
    assert "train_files.txt:" in err and "malformed" in err


def test_missing_split_names_fetch_script(tiny_kitti, capsys):
    argv = _args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo")
    argv[argv.index("--split") + 1] = "eigen_zhou_missing"
    err = _main_error(capsys, argv)
    assert "eigen_zhou_missing" in err


def test_resume_without_checkpoint(tiny_kitti):
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(parse_train(_args(tiny_kitti, "nothing", "--frame_ids", "0", "--use_stereo", "--resume")))


def test_pretrained_weights_offline_names_scratch(tiny_kitti, capsys, monkeypatch):
    import urllib.error
    import torch.hub
    from networks import resnet_encoder

    monkeypatch.setattr(resnet_encoder, "imagenet_checkpoint_path", lambda n: "/nonexistent/resnet.pth")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    argv = [a for a in _args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo") if a != "scratch"]
    argv.remove("--weights_init")
    err = _main_error(capsys, argv)
    assert "--weights_init scratch" in err and "Traceback" not in err


@pytest.mark.parametrize("requested,cores,processes,expected", [
    (12, 2, 1, 1),    # 2 cores: one worker, the other core steps
    (12, 16, 1, 12),  # enough cores: monodepth2's 12
    (12, 16, 4, 3),   # torchrun, 4 processes on 16 cores: 4 cores each, less one for the step
    (4, 64, 1, 4),    # never more than asked for
    (12, 1, 1, 1),    # one core: still one worker (loading off the step's thread)
    (0, 16, 1, 0),    # 0: load in the main process
])
def test_loader_workers_follow_the_cores(requested, cores, processes, expected):
    from depth_hints.trainer import loader_workers
    assert loader_workers(requested, cores, processes) == expected


def test_loader_workers_keep_the_step_priority_unless_asked(monkeypatch):
    """At the step's priority the loader fills the cores' waits (a niced worker was starved and
    the step waited for its batch); DH_LOADER_NICE lowers it on a shared machine."""
    import cv2
    import signal
    from depth_hints import trainer as trainer_module
    monkeypatch.setattr(cv2, "setNumThreads", lambda n: None)  # this process keeps its threads
    ignored = []  # this process keeps its signal handlers; a worker ignores preemption signals
    monkeypatch.setattr(signal, "signal", lambda signum, handler: ignored.append((signum, handler)))
    calls = []
    monkeypatch.setattr(trainer_module.os, "nice", lambda n: calls.append(n), raising=False)
    monkeypatch.delenv("DH_LOADER_NICE", raising=False)
    trainer_module.worker_init(0)
    assert calls == []
    monkeypatch.setenv("DH_LOADER_NICE", "7")
    trainer_module.worker_init(0)
    assert calls == [7]
    assert set(ignored) == {(signal.SIGTERM, signal.SIG_IGN), (signal.SIGUSR1, signal.SIG_IGN)}


# -- numeric flags: refused at parse time with one line naming the flag -----------------------

@pytest.mark.parametrize("flag,value", [
    ("--log_frequency", "0"), ("--save_frequency", "0"), ("--scheduler_step_size", "0"),
    ("--batch_size", "0"), ("--num_epochs", "0"), ("--learning_rate", "0"),
    ("--learning_rate", "nan"), ("--num_workers", "-1"), ("--num_steps", "-3"),
    ("--disparity_smoothness", "-0.001"), ("--min_depth", "0"), ("--max_depth", "0.05"),
    ("--save_every_steps", "-1"),
])
def test_numeric_flags_out_of_range_are_one_line_errors_at_parse_time(tiny_kitti, capsys, flag, value):
    argv = _args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo", flag, value)
    with pytest.raises(OptionsError, match=flag):
        parse_train(argv)
    err = _without_notes(_main_error(capsys, argv))
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and flag in err


def test_numeric_flags_at_their_smallest_valid_values_parse(tiny_kitti):
    opt = parse_train(_args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo", "--log_frequency", "1",
                            "--save_frequency", "1", "--scheduler_step_size", "1", "--num_epochs", "1",
                            "--num_workers", "0", "--num_steps", "0", "--disparity_smoothness", "0"))
    assert (opt.log_frequency, opt.save_frequency, opt.scheduler_step_size, opt.num_workers) == (1, 1, 1, 0)


# -- smaller items: split advice, the fine-tuning line, --fp16 on the CPU ---------------------

def test_stereo_dataset_without_split_names_make_stereo_splits(tiny_kitti, capsys):
    argv = [a for a in _args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo", "--dataset", "stereo")]
    i = argv.index("--split")
    del argv[i:i + 2]
    err = _without_notes(_main_error(capsys, argv))
    assert len(err.strip().splitlines()) == 1
    assert "scripts/make_stereo_splits.py" in err and "--split" in err
    assert "fetch_kitti_splits" not in err


def test_fine_tuning_says_where_the_weights_come_from(tiny_kitti, capsys):
    base = ["--frame_ids", "0", "--use_stereo", "--num_epochs", "1"]
    Trainer(parse_train(_args(tiny_kitti, "ft0", "--num_steps", "1", *base))).train()
    folder = os.path.join(tiny_kitti, "logs", "ft0", "models", "weights_0")
    capsys.readouterr()
    Trainer(parse_train(_args(tiny_kitti, "ft1", "--load_weights_folder", folder,
                              "--models_to_load", "encoder", "depth", *base)))
    out = capsys.readouterr().out
    assert f"loading weights from {folder}: encoder, depth" in out


def test_fp16_on_the_cpu_is_refused_naming_bf16(tiny_kitti, capsys):
    err = _without_notes(_main_error(capsys, _args(tiny_kitti, "x", "--frame_ids", "0", "--use_stereo",
                                                   "--fp16")))
    assert len(err.strip().splitlines()) == 1 and "--fp16" in err and "--bf16" in err


# -- resume on a new layout, GradScaler state, the checkpoint swap -----------------------------

def _seen_samples(monkeypatch, dataset_class, record):
    """Record (epoch, sample index) of every training sample fetched (num_workers 0)."""
    original = dataset_class.__getitem__

    def spy(self, index):
        if record.get("trainer") is not None and self is record["trainer"].train_set:
            record["seen"].append((record["trainer"].state.epoch, index))
        return original(self, index)
    monkeypatch.setattr(dataset_class, "__getitem__", spy)


@pytest.mark.parametrize("old_format", [False, True])
def test_resume_with_a_doubled_batch_size_trains_the_remaining_epochs_and_samples(
        tmp_path, monkeypatch, old_format):
    """12 samples, 3 epochs. Stopped after 8 steps of batch 2 (epoch 1, 4 of its samples
    seen), resumed with batch 4: epoch 1's other 8 samples in 2 steps, then epoch 2's 12 in 3
    steps. Checkpoints of the old format (position in batches) resume the same way."""
    from conftest import make_kitti_tree
    root = str(tmp_path)
    make_kitti_tree(root, num_frames=8)
    base = ["--frame_ids", "0", "--use_stereo", "--num_epochs", "3", "--width", "96"]
    record = {"seen": []}
    first = Trainer(parse_train(_args(root, "L", "--num_steps", "8", *base)))
    _seen_samples(monkeypatch, type(first.train_set), record)
    record["trainer"] = first
    assert first.train()["steps"] == 8
    folder = os.path.join(root, "logs", "L", "models", "weights_1")
    if old_format:  # what the trainer wrote before positions were counted in samples
        path = os.path.join(folder, "train_state.pth")
        state = torch.load(path, weights_only=False)
        del state["samples_in_epoch"]
        assert state["batch_in_epoch"] == 2
        torch.save(state, path)
    resumed = Trainer(parse_train(_args(root, "L", "--resume", "--batch_size", "4", *base)))
    assert (resumed.state.epoch, resumed.state.step, resumed.state.samples_in_epoch) == (1, 8, 4)
    record["trainer"] = resumed
    summary = resumed.train()
    assert (summary["steps"], summary["epochs"]) == (13, 3)
    seen = record["seen"]
    assert sorted(i for e, i in seen if e == 0) == list(range(12))
    assert sorted(i for e, i in seen if e == 1) == list(range(12))  # 4 before the stop, 8 after
    assert sorted(i for e, i in seen if e == 2) == list(range(12))
    assert len(seen) == 36
    state = torch.load(os.path.join(root, "logs", "L", "models", "weights_2", "train_state.pth"),
                       weights_only=False)
    assert (state["epoch"], state["step"], state["samples_in_epoch"]) == (3, 13, 0)


def test_resume_with_fp16_of_a_float32_run_skips_the_empty_scaler_state(tiny_kitti, monkeypatch):
    """A run saved without --fp16 holds an empty GradScaler state: --resume --fp16 starts a
    fresh scaler; a --fp16 run's own scaler state is restored."""
    from depth_hints import trainer as trainer_module
    monkeypatch.setattr(trainer_module, "autocast_dtype",  # the CPU refuses --fp16 for speed
                        lambda opt, device: torch.float16 if opt.fp16 else None)
    base = ["--frame_ids", "0", "--use_stereo", "--num_epochs", "2", "--width", "96"]
    Trainer(parse_train(_args(tiny_kitti, "p", "--num_steps", "1", *base))).train()
    resumed = Trainer(parse_train(_args(tiny_kitti, "p", "--resume", "--fp16", "--num_steps", "2", *base)))
    assert resumed.scaler.is_enabled() and resumed.state.step == 1
    resumed.train()
    saved = torch.load(os.path.join(tiny_kitti, "logs", "p", "models", "weights_0", "train_state.pth"),
                       weights_only=False)["scaler"]
    assert saved and saved["_growth_tracker"] == 1
    again = Trainer(parse_train(_args(tiny_kitti, "p", "--resume", "--fp16", *base)))
    assert again.scaler.state_dict()["_growth_tracker"] == 1


def test_a_kill_between_the_checkpoint_renames_leaves_a_resumable_checkpoint(tiny_kitti, monkeypatch):
    """Replacing weights_0: killed after the old folder was moved aside and before the new one
    was moved in, only weights_0.old (complete) and weights_0.tmp remain: --resume takes
    weights_0.old; a lone .tmp is never taken; the next save cleans up."""
    from depth_hints.trainer import latest_checkpoint
    base = ["--frame_ids", "0", "--use_stereo", "--num_epochs", "2", "--width", "96"]
    trainer = Trainer(parse_train(_args(tiny_kitti, "k", "--num_steps", "1", *base)))
    trainer.train()
    models = os.path.join(tiny_kitti, "logs", "k", "models")
    trainer.state.step = 99  # a later save of the same folder, to be interrupted

    class Killed(BaseException):
        pass
    original, calls = os.replace, []

    def replace_then_die(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise Killed
        return original(src, dst)
    monkeypatch.setattr(checkpoints.os, "replace", replace_then_die)
    with pytest.raises(Killed):
        trainer.save(0)
    monkeypatch.setattr(checkpoints.os, "replace", original)
    assert sorted(d for d in os.listdir(models) if d.startswith("weights_")) == \
        ["weights_0.old", "weights_0.tmp"]
    assert latest_checkpoint(models) == os.path.join(models, "weights_0.old")
    resumed = Trainer(parse_train(_args(tiny_kitti, "k", "--resume", "--num_steps", "2", *base)))
    assert resumed.state.step == 1  # the complete checkpoint, not the interrupted one
    resumed.train()
    assert sorted(d for d in os.listdir(models) if d.startswith("weights_")) == ["weights_0"]
    os.makedirs(os.path.join(models, "weights_5.tmp"))  # a save killed while writing
    assert latest_checkpoint(models) == os.path.join(models, "weights_0")
