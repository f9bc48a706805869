"""Precompute faults a cluster user meets: a worker killed mid-run, shards from several
sources, hints of another size, images of the other extension, and the scripts' error path."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

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


# ----------------------------------------------------------------------------- shard sources

def _frames(count=24):
    from depth_hints.splits import Sample
    return [Sample(f"drive_{i % 3}", i, "lr"[i % 2]) for i in range(count)]


def _array(task, count, first=0, last=None, step=None):
    """The variables SLURM sets in task ``task`` of an array."""
    environ = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count),
               "SLURM_ARRAY_TASK_MIN": str(first),
               "SLURM_ARRAY_TASK_MAX": str(first + count - 1 if last is None else last)}
    if step is not None:
        environ["SLURM_ARRAY_TASK_STEP"] = str(step)
    return environ


def _parts(environs, flag=None, num_shards=None):
    samples = _frames()
    return [precompute.shard_samples(samples, precompute.resolve_shard(flag, env, num_shards))
            for env in environs]


def _partition(parts, samples):
    flat = [s for part in parts for s in part]
    return len(flat) == len(set(flat)) and set(flat) == set(samples)


@pytest.mark.parametrize("flag", [None, "1/2"])
def test_torchrun_inside_an_array_task_or_a_flag_shard_splits_that_shard_between_ranks(flag):
    """Every local rank used to compute the same shard: the ranks now split their shard."""
    outer = _array(1, 2) if flag is None else {}
    whole_shard = _parts([outer], flag)[0]
    ranks = [dict(outer, RANK=str(r), WORLD_SIZE="3", LOCAL_RANK=str(r)) for r in range(3)]
    parts = _parts(ranks, flag)
    assert all(parts) and _partition(parts, whole_shard)
    described = precompute.resolve_shard(flag, ranks[2]).describe()
    assert "2/3" in described and "RANK" in described


def test_array_ids_are_shard_ids_with_num_shards_so_failed_ids_can_be_resubmitted():
    """First submission --array=0-3, then only 1 and 3 again: the same frames each time."""
    samples = _frames()
    first = _parts([_array(t, 4) for t in range(4)], num_shards=4)
    assert _partition(first, samples)
    again = _parts([_array(1, 2, first=1, last=3), _array(3, 2, first=1, last=3)], num_shards=4)
    assert again == [first[1], first[3]]
    # without --num_shards the plain full array still works
    assert _parts([_array(t, 4) for t in range(4)]) == first


@pytest.mark.parametrize("environ", [
    _array(11, 2, first=3, last=11),              # --array=3,11: a resubmission of two ids
    _array(11, 2, first=3, last=11, step=8),      # ... even if SLURM calls it evenly spaced
    _array(3, 1, first=3, last=3),                # --array=3: one failed id
    _array(2, 4, first=1),                        # --array=1-4
])
def test_an_array_that_is_not_0_to_count_minus_1_needs_num_shards(environ):
    with pytest.raises(precompute.PrecomputeError, match="--num_shards"):
        precompute.resolve_shard(None, environ)


@pytest.mark.parametrize("flag,environ,num_shards,named", [
    (None, _array(4, 5), 4, "SLURM_ARRAY_TASK_ID=4"),            # an id past the last shard
    (None, _array(1, 2, first=0, last=20), 16, "SLURM_ARRAY_TASK_MAX=20"),
    (None, {}, 4, "--num_shards"),                               # no array to read the id from
    ("0/4", _array(0, 4), 4, "--num_shards"),                    # two totals
    (None, _array(0, 4), 0, "--num_shards"),
])
def test_num_shards_mistakes_are_one_line_errors(flag, environ, num_shards, named):
    with pytest.raises(precompute.PrecomputeError, match=named):
        precompute.resolve_shard(flag, environ, num_shards)


def test_num_shards_flag_reaches_the_run(tmp_path, monkeypatch):
    from depth_hints.options import parse_precompute
    options = parse_precompute(["--data_path", str(tmp_path), "--num_shards", "16"])
    assert options.num_shards == 16


# ----------------------------------------------------------------------------- hints of another size

def _small_tree(tmp_path, frames=((0, "l"), (1, "r"))):
    root = tmp_path / "kitti"
    return root, write_kitti(root, frames=frames, gt=False)


def _flags(root, split, save, height=HEIGHT, width=WIDTH, *extra):
    return [str(f) for f in ("--data_path", root, "--filenames", split, "--png", "--height",
                             height, "--width", width, "--num_workers", "0", "--save_path",
                             save, "--no_cuda", *extra)]


def test_valid_hints_of_another_size_are_never_replaced_silently(tmp_path, capsys):
    import precompute_depth_hints
    root, split = _small_tree(tmp_path)
    save = tmp_path / "hints"
    assert precompute_depth_hints.main(_flags(root, split, save)) == 0
    paths = sorted(save.rglob("*.npy"))
    before = {p: p.read_bytes() for p in paths}
    capsys.readouterr()
    # the README's mistake: the same folder at the default or another size
    code = precompute_depth_hints.main(_flags(root, split, save, HEIGHT // 2, WIDTH))
    lines = error_lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1
    err = lines[0]
    assert f"{WIDTH}x{HEIGHT}" in err and f"--height {HEIGHT // 2} --width {WIDTH}" in err
    assert "--overwrite_saved_depths" in err
    assert {p: p.read_bytes() for p in paths} == before
    # asked for explicitly, they are replaced at the new size
    code = precompute_depth_hints.main(_flags(root, split, save, HEIGHT // 2, WIDTH,
                                              "--overwrite_saved_depths"))
    assert code == 0
    assert all(hint_files.load_hint(str(p)).shape == (HEIGHT // 2, WIDTH) for p in paths)


def test_a_corrupt_file_beside_valid_ones_is_still_repaired(tmp_path):
    root, split = _small_tree(tmp_path)
    save = tmp_path / "hints"
    first = precompute.precompute(parse_precompute(_flags(root, split, save)), progress=False,
                                  verbose=False)
    assert first.computed == 2
    path = sorted(save.rglob("*.npy"))[0]
    path.write_bytes(path.read_bytes()[:90])
    again = precompute.precompute(parse_precompute(_flags(root, split, save)), progress=False,
                                  verbose=False)
    assert (again.computed, again.replaced, again.skipped) == (1, 1, 1) and again.ok


# ----------------------------------------------------------------------------- suggested commands

def test_training_suggests_a_precompute_command_with_the_users_own_flags(tiny_kitti, tmp_path):
    """Validation hints missing: the command names --png, the size of the hints the training
    split already has, the validation list and the folder."""
    from depth_hints.options import parse_train
    from depth_hints.trainer import Trainer, TrainingError
    root = Path(tiny_kitti)
    split = tmp_path / "split_val_without_hints"
    split.mkdir()
    (split / "train_files.txt").write_text(f"{FOLDER} 1 l\n{FOLDER} 2 r\n")
    (split / "val_files.txt").write_text(f"{FOLDER} 3 l\n")
    os.remove(hint_files.hint_file_path(str(root / "depth_hints"), FOLDER, 3, "l"))
    options = parse_train(["--data_path", str(root), "--split", str(split), "--png",
                           "--height", "32", "--width", "96", "--frame_ids", "0", "--use_stereo",
                           "--use_depth_hints", "--log_dir", str(tmp_path / "logs"),
                           "--weights_init", "scratch", "--no_cuda"])
    with pytest.raises(TrainingError) as caught:
        Trainer(options)
    message = str(caught.value)
    command = message[message.index("`python precompute_depth_hints.py"):].split("`")[1]
    args = command.split()
    assert args[args.index("--filenames") + 1] == str(split / "val_files.txt")
    assert "--png" in args
    # the training split's hints are 192x64: the validation ones must match them
    assert args[args.index("--height") + 1] == "64" and args[args.index("--width") + 1] == "192"
    assert args[args.index("--save_path") + 1] == str(root / "depth_hints")
    assert "--dataset" not in args  # KITTI, the default


def _readme_block(title: str) -> list:
    """The commands (continuation lines joined) of the first bash block under ``## title``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"## {title}\n"):]
    start = section.index("```bash\n") + 8
    block = section[start:section.index("\n```", start)]
    return [" ".join(c.split()) for c in block.replace("\\\n", " ").splitlines() if c.strip()
            and not c.startswith("#")]


def test_readme_sceneflow_block_precomputes_every_hint_its_training_reads(tmp_path, monkeypatch):
    import shlex
    from depth_hints import splits
    from depth_hints.options import parse_precompute, parse_train
    commands = _readme_block("SceneFlow")
    pre = next(c for c in commands if c.startswith("python precompute_depth_hints.py"))
    train = next(c for c in commands if c.startswith("python train.py"))
    monkeypatch.setattr(splits, "PROJECT_SPLITS_DIR", tmp_path / "splits")
    folder = tmp_path / "splits" / "sceneflow"
    folder.mkdir(parents=True)
    (folder / "train_files.txt").write_text("flyingthings3d/TRAIN/A/0000 6 l\n"
                                            "flyingthings3d/TRAIN/A/0000 7 r\n")
    (folder / "val_files.txt").write_text("flyingthings3d/TRAIN/B/0001 6 l\n")
    pre_options = parse_precompute(shlex.split(pre)[2:])
    train_options = parse_train(shlex.split(train)[2:])
    _, covered, _ = precompute.split_samples(pre_options)
    needed = [s for name in ("train_files.txt", "val_files.txt")
              for s in splits.read_split_file(splits.split_file(train_options.split, name))]
    assert set(needed) <= set(covered)
    assert (pre_options.height, pre_options.width) == (train_options.height, train_options.width)
    assert pre_options.save_path == train_options.depth_hint_path
    assert pre_options.dataset == train_options.dataset == "sceneflow"


# ----------------------------------------------------------------------------- jpg vs png

def test_a_run_without_png_on_png_data_lists_a_few_missing_files_and_suggests_png(tmp_path,
                                                                                   capsys):
    import precompute_depth_hints
    root = tmp_path / "kitti"
    lines = []
    for frame in range(30):
        for cam in ("image_02", "image_03"):
            path = root / FOLDER / cam / "data" / f"{frame:010d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"png")  # never read: the .jpg files are looked for
        lines.append(f"{FOLDER} {frame} l\n")
    split = tmp_path / "files.txt"
    split.write_text("".join(lines))
    code = precompute_depth_hints.main(["--data_path", str(root), "--filenames", str(split),
                                        "--num_workers", "0", "--save_path",
                                        str(tmp_path / "hints"), "--no_cuda"])
    out = capsys.readouterr().out
    assert code == 1
    listed = [line for line in out.splitlines() if line.strip().endswith(".jpg")]
    assert 0 < len(listed) <= 10 and "60" in out  # 60 missing images, a few listed
    assert "--png" in out and ".png" in out
    # and the other way round: --png on jpg data suggests dropping it
    for path in root.rglob("*.png"):
        path.rename(path.with_suffix(".jpg"))
    code = precompute_depth_hints.main(["--data_path", str(root), "--filenames", str(split),
                                        "--png", "--num_workers", "0", "--save_path",
                                        str(tmp_path / "hints"), "--no_cuda"])
    out = capsys.readouterr().out
    assert code == 1 and "without --png" in out


# ----------------------------------------------------------------------------- scripts/

SCRIPTS = ROOT / "scripts"


def test_every_script_goes_through_the_one_line_error_path():
    """Each scripts/*.py runs its work inside ``run_entry_point`` (itself or via the module
    whose ``main`` it calls), so a DepthHintsError is one line and exit code 2."""
    for path in sorted(SCRIPTS.glob("*.py")):
        text = path.read_text()
        assert "run_entry_point" in text or "from depth_hints.export import main" in text, path


def _script_cases(tmp: Path):
    missing = tmp / "missing"
    unrelated = tmp / "my_kitti"
    (unrelated / "2011_09_26").mkdir(parents=True)
    (unrelated / "calib.txt").write_text("mine\n")
    return {
        "make_sceneflow_splits.py": (["--data_path", missing, "--out_dir", tmp / "o"], "missing"),
        "make_synthetic_kitti.py": (["--frames_per_drive", "2", "--out_dir", tmp / "w"],
                                    "--frames_per_drive"),
        "make_stereo_splits.py": (["--data_path", missing, "--out_dir", tmp / "o"], "missing"),
        "benchmark_hints.py": (["--sizes", "1024by320"], "--sizes"),
        "benchmark_pick_device.py": (["--device", "cpu", "--sizes", "big"], "--sizes"),
        "benchmark_inference.py": (["--num_layers", "7"], "--num_layers"),
        "benchmark_train.py": (["--data_path", unrelated], "--data_path"),
        "export_model.py": (["--load_weights_folder", missing, "--out", tmp / "m.onnx"],
                            "missing"),
        "export_gt_depth.py": (["--data_path", missing, "--split", tmp / "nosplit"], "nosplit"),
    }


@pytest.mark.parametrize("script", ["make_sceneflow_splits.py", "make_synthetic_kitti.py",
                                    "make_stereo_splits.py", "benchmark_hints.py",
                                    "benchmark_pick_device.py", "benchmark_inference.py",
                                    "benchmark_train.py", "export_model.py",
                                    "export_gt_depth.py"])
def test_a_bad_input_to_a_script_is_one_line_without_traceback(tmp_path, script):
    args, named = _script_cases(tmp_path)[script]
    code, out, err = run_script([SCRIPTS / script, *args], timeout=120, cwd=tmp_path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error:") or \
        lines[0].startswith("depth-hints-export: error:"), err
    assert named in lines[0]


def test_benchmark_train_writes_its_world_only_into_a_named_cache_or_an_empty_folder(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("benchmark_train", SCRIPTS / "benchmark_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert "benchmark_world" in os.path.basename(bench.default_world_folder())
    unrelated = tmp_path / "kitti_data"
    (unrelated / "2011_09_26").mkdir(parents=True)
    before = sorted(unrelated.rglob("*"))
    from depth_hints.errors import DepthHintsError
    with pytest.raises(DepthHintsError, match="--split"):
        bench.check_world_folder(str(unrelated))
    assert sorted(unrelated.rglob("*")) == before
    bench.check_world_folder(str(tmp_path / "new"))  # absent or empty: fine
    (tmp_path / "empty").mkdir()
    bench.check_world_folder(str(tmp_path / "empty"))
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "synthetic_kitti.json").write_text("{}")
    bench.check_world_folder(str(tmp_path / "world"))  # a world of an earlier run: reused
