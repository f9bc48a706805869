"""SceneFlow: PFM files, the three subset layouts, ground truth, split lists, a few training steps."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import datasets
from datasets.sceneflow import (
    SCENEFLOW_STEREO_SCALE_FACTOR, SceneFlowError, make_sceneflow_splits, sceneflow_disparity_path,
    sceneflow_image_path)
from datasets.sceneflow_dataset import SceneFlowDataset
from depth_hints import geometry
from depth_hints.pfm import PFMError, read_pfm, write_pfm
from depth_hints.splits import read_split_file

# small 16:9 renders standing in for 960x540; the loader resizes them to 64x128
RENDER_H, RENDER_W = 36, 64
SHIFT = 4  # disparity of the fronto-parallel test scene, in render pixels
H, W = 64, 128

FT3D = "flyingthings3d/TRAIN/A/0000"
DRIVING_15 = "driving/15mm_focallength/scene_forwards/fast"
DRIVING_35 = "driving/35mm_focallength/scene_backwards/slow"
MONKAA = "monkaa/eating_x2"


def write_sequence(root, folder, frames, sceneflow_pass="clean", seed=0, disparity=True, skip=()):
    """Textured frames whose right view is the left shifted by SHIFT pixels, plus constant
    disparity maps; (frame, side) pairs in ``skip`` are not written."""
    rng = np.random.default_rng(seed)
    span = RENDER_W + 2 * len(frames) + SHIFT
    base = rng.uniform(0, 255, (RENDER_H, span // 2, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(base).resize((span, RENDER_H), Image.BILINEAR))
    for i, frame in enumerate(frames):
        # a point at column x of the left view is at x - SHIFT in the right view
        views = {"l": base[:, 2 * i: 2 * i + RENDER_W], "r": base[:, 2 * i + SHIFT: 2 * i + SHIFT + RENDER_W]}
        for side, img in views.items():
            if (frame, side) in skip:
                continue
            path = sceneflow_image_path(root, folder, frame, side, sceneflow_pass)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(np.ascontiguousarray(img)).save(path)
            if disparity:
                write_pfm(sceneflow_disparity_path(root, folder, frame, side),
                          np.full((RENDER_H, RENDER_W), SHIFT, np.float32))


def _dataset(root, lines, frame_ids=(0, -1, 1, "s"), **kw):
    return SceneFlowDataset(str(root), lines, H, W, frame_ids, 4, **kw)


# ----------------------------------------------------------------------------------- PFM

@pytest.mark.parametrize("little_endian", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
def test_pfm_round_trip_keeps_values_and_row_order(tmp_path, little_endian, channels):
    rng = np.random.default_rng(channels)
    shape = (5, 7) if channels == 1 else (5, 7, 3)
    array = rng.normal(size=shape).astype(np.float32)
    array[0] = 100.0  # the first row differs from every other, so a flip would show
    path = str(tmp_path / "a.pfm")
    write_pfm(path, array, little_endian=little_endian)
    back = read_pfm(path)
    assert back.dtype == np.float32 and back.shape == shape
    np.testing.assert_array_equal(back, array)
    with open(path, "rb") as f:
        magic, size, scale = f.readline(), f.readline(), f.readline()
        first = np.frombuffer(f.read(4), "<f4" if little_endian else ">f4")[0]
    assert magic.strip() == (b"Pf" if channels == 1 else b"PF") and size.split() == [b"7", b"5"]
    assert (float(scale) < 0) == little_endian
    assert first == array[-1].reshape(-1)[0]  # stored bottom row first
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_pfm_read_of_a_hand_written_big_endian_file(tmp_path):
    path = tmp_path / "b.pfm"
    bottom_up = np.array([[4, 5, 6], [1, 2, 3]], ">f4")  # file order: bottom row first
    path.write_bytes(b"Pf\n3 2\n1.0\n" + bottom_up.tobytes())
    np.testing.assert_array_equal(read_pfm(path), [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("header,match", [
    (b"P6\n3 2\n-1.0\n", "magic"),
    (b"Pf\n0 2\n-1.0\n", "dimensions"),
    (b"Pf\nthree 2\n-1.0\n", "dimensions"),
    (b"Pf\n3 2\n0.0\n", "scale"),
    (b"Pf\n3 2\nnan\n", "scale"),
    (b"Pf\n3 2\nlittle\n", "scale"),
    (b"Pf\n3", "header"),
])
def test_pfm_corrupt_header_names_the_file(tmp_path, header, match):
    path = tmp_path / "corrupt.pfm"
    path.write_bytes(header + np.zeros(6, "<f4").tobytes() if header.endswith(b"\n") else header)
    with pytest.raises(PFMError, match=rf"corrupt\.pfm.*{match}"):
        read_pfm(path)


def test_pfm_truncated_file_names_the_file(tmp_path):
    path = str(tmp_path / "short.pfm")
    write_pfm(path, np.ones((4, 5), np.float32))
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:-3])
    with pytest.raises(PFMError, match=r"short\.pfm.*truncated"):
        read_pfm(path)
    assert issubclass(PFMError, ValueError)
    with pytest.raises(FileNotFoundError, match="missing.pfm"):
        read_pfm(tmp_path / "missing.pfm")


# ------------------------------------------------------------------------------ layouts

@pytest.mark.parametrize("folder,frames,focal_px,suffix", [
    (FT3D, [6, 7, 8], 1050.0, "flyingthings3d/frames_cleanpass/TRAIN/A/0000/{}/0007.png"),
    (DRIVING_15, [11, 12, 13], 450.0,
     "driving/frames_cleanpass/15mm_focallength/scene_forwards/fast/{}/0012.png"),
    (DRIVING_35, [11, 12, 13], 1050.0,
     "driving/frames_cleanpass/35mm_focallength/scene_backwards/slow/{}/0012.png"),
    (MONKAA, [0, 1, 2], 1050.0, "monkaa/frames_cleanpass/eating_x2/{}/0001.png"),
])
def test_samples_of_each_subset_layout(tmp_path, folder, frames, focal_px, suffix):
    write_sequence(tmp_path, folder, frames)
    lines = [f"{folder} {frames[1]} l", f"{folder} {frames[1]} r"]
    ds = _dataset(tmp_path, lines)
    for side, name in (("l", "left"), ("r", "right")):
        assert ds.image_path(folder, frames[1], side) == os.path.join(str(tmp_path), *suffix.format(name).split("/"))
    for index, sign in ((0, -1), (1, 1)):
        item = ds[index]
        for f in (0, -1, 1, "s"):
            for s in range(4):
                assert item[("color", f, s)].shape == (3, H // 2 ** s, W // 2 ** s)
                assert item[("color_aug", f, s)].shape == item[("color", f, s)].shape
        for s in range(4):
            K = item[("K", s)]
            assert K[0, 0] == pytest.approx(focal_px / 960 * W / 2 ** s)
            assert K[1, 1] == pytest.approx(focal_px / 540 * H / 2 ** s)
            assert (K[0, 2], K[1, 2]) == (pytest.approx(W / 2 ** s / 2), pytest.approx(H / 2 ** s / 2))
            torch.testing.assert_close(K @ item[("inv_K", s)], torch.eye(4), atol=1e-5, rtol=0)
        # a right-view sample flips the stereo sign
        assert item["stereo_T"][0, 3] == pytest.approx(sign * geometry.NOMINAL_BASELINE)
    assert not ds.missing_files()


def test_registered_as_sceneflow():
    assert datasets.dataset_class("sceneflow") is SceneFlowDataset is datasets.SceneFlowDataset


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_stereo_warp_with_ground_truth_reproduces_the_target(tmp_path, flip):
    """Ground-truth disparity converted to nominal-baseline depth warps the other view onto the
    target with the sample's K and stereo_T: the SceneFlow conventions fit the training ones."""
    write_sequence(tmp_path, DRIVING_15, [1, 2, 3])
    ds = _dataset(tmp_path, [f"{DRIVING_15} 2 l", f"{DRIVING_15} 2 r"], frame_ids=(0, "s"),
                  is_train=True)
    ds.flip_probability, ds.color_aug_probability = flip, 0.0
    for index, sample in enumerate(ds.samples):
        item = ds[index]
        disp = ds.get_disparity(sample.folder, sample.frame_index, sample.side) * W / RENDER_W
        nominal_depth = geometry.disparity_to_depth(torch.from_numpy(disp), float(item[("K", 0)][0, 0]),
                                                    geometry.NOMINAL_BASELINE)
        depth = torch.nn.functional.interpolate(nominal_depth[None, None], size=(H, W), mode="nearest")
        warped = geometry.warp(item[("color", "s", 0)][None], depth, item[("K", 0)][None],
                               item[("inv_K", 0)][None], item["stereo_T"][None])
        err = (warped - item[("color", 0, 0)][None]).abs()[..., 12:-12].mean()
        assert err < 0.03
        # the same disparity in SceneFlow's units: nominal depth times the scale factor
        scene_depth = ds.get_depth(sample.folder, sample.frame_index, sample.side)
        np.testing.assert_allclose(scene_depth, nominal_depth.numpy() * SCENEFLOW_STEREO_SCALE_FACTOR,
                                   rtol=1e-5)


def test_disparity_and_depth_are_consistent(tmp_path):
    write_sequence(tmp_path, MONKAA, [0, 1, 2])
    disparity = np.linspace(-2, 30, RENDER_H * RENDER_W, dtype=np.float32).reshape(RENDER_H, RENDER_W)
    write_pfm(sceneflow_disparity_path(str(tmp_path), MONKAA, 1, "r"), disparity, little_endian=False)
    ds = _dataset(tmp_path, [f"{MONKAA} 1 r"], frame_ids=(0,), load_depth_gt=True)
    disp = ds.get_disparity(MONKAA, 1, "r")
    np.testing.assert_array_equal(disp, disparity)
    depth = ds.get_depth(MONKAA, 1, "r")
    assert depth.dtype == np.float32 and depth.shape == (RENDER_H, RENDER_W)
    valid = disparity > 0
    assert (depth[~valid] == 0).all() and (depth[valid] > 0).all()
    fx_px = 1050.0 / 960 * RENDER_W  # focal length in pixels of the stored map
    np.testing.assert_allclose(depth[valid] * disp[valid], fx_px * 1.0, rtol=1e-5)
    item = ds[0]
    np.testing.assert_array_equal(item["depth_gt"][0].numpy(), depth)


def test_final_pass_and_missing_files(tmp_path):
    write_sequence(tmp_path, FT3D, [6, 7, 8], sceneflow_pass="final", disparity=False)
    line = [f"{FT3D} 7 l"]
    item = _dataset(tmp_path, line, sceneflow_pass="final")[0]
    assert item[("color", 0, 0)].shape == (3, H, W)
    clean = _dataset(tmp_path, line, sceneflow_pass="clean")
    missing = sceneflow_image_path(str(tmp_path), FT3D, 7, "l", "clean")
    other = sceneflow_image_path(str(tmp_path), FT3D, 7, "r", "clean")  # the pair's other view
    neighbours = [sceneflow_image_path(str(tmp_path), FT3D, f, "l", "clean") for f in (6, 8)]  # -1, +1
    assert "frames_cleanpass" in missing and clean.missing_files() == [missing, other] + neighbours
    with pytest.raises(datasets.DatasetError, match=r"frames_cleanpass.*0007\.png"):
        clean[0]
    with pytest.raises(datasets.DatasetError, match=r"disparity.*0007\.pfm"):
        clean.get_depth(FT3D, 7, "l")
    with pytest.raises(SceneFlowError, match="sceneflow_pass"):
        _dataset(tmp_path, line, sceneflow_pass="albedo")


@pytest.mark.parametrize("line,match", [
    ("sintel/alley_1 3 l", r"sintel/alley_1 3 l.*unknown SceneFlow subset 'sintel'.*driving, flyingthings3d, monkaa"),
    ("driving/scene_forwards/fast 3 l", r"driving/scene_forwards/fast 3 l.*not a driving sequence folder"),
    ("flyingthings3d/TRAIN/D/0000 6 l", r"not a flyingthings3d sequence folder"),
])
def test_bad_lines_are_named(tmp_path, line, match):
    with pytest.raises(SceneFlowError, match=match):
        _dataset(tmp_path, [line])


# ---------------------------------------------------------------------------- split lists

def _tree_for_splits(root):
    write_sequence(root, "flyingthings3d/TRAIN/A/0000", range(6, 11))
    write_sequence(root, "flyingthings3d/TRAIN/A/0001", range(6, 11), skip={(9, "r")})
    write_sequence(root, "flyingthings3d/TRAIN/B/0002", range(6, 11))
    write_sequence(root, "flyingthings3d/TEST/C/0003", range(6, 9))
    write_sequence(root, "flyingthings3d/TEST/C/0004", range(6, 9), disparity=False)
    for side in ("left", "right"):  # not a sequence folder of the layout: skipped
        os.makedirs(os.path.join(root, "flyingthings3d", "frames_cleanpass", "TRAIN", "A", "junk", side))
    write_sequence(root, DRIVING_15, range(1, 4))
    write_sequence(root, MONKAA, range(0, 3))


def test_make_sceneflow_splits(tmp_path):
    root = str(tmp_path / "sf")
    _tree_for_splits(root)
    out = str(tmp_path / "splits")
    counts = make_sceneflow_splits(root, out, val_fraction=0.3, seed=0)
    lists = {n: read_split_file(os.path.join(out, f"{n}_files.txt")) for n in ("train", "val", "test")}
    assert counts == {f"{n}_files.txt": len(v) for n, v in lists.items()}
    # three TRAIN sequences, one held out whole for val
    val_folders = {s.folder for s in lists["val"]}
    train_folders = {s.folder for s in lists["train"]}
    assert len(val_folders) == 1 and len(train_folders) == 2 and not val_folders & train_folders
    for s in lists["train"] + lists["val"]:
        assert s.folder.startswith("flyingthings3d/TRAIN/")
        assert s.frame_index in (7, 8, 9) and s.frame_index not in (6, 10)
    by_folder = {}
    for s in lists["train"] + lists["val"]:
        by_folder.setdefault(s.folder, set()).add((s.frame_index, s.side))
    # frame 9 of A/0001 has no right view: 9 goes, and so do its neighbours 8 and 10
    assert by_folder["flyingthings3d/TRAIN/A/0001"] == {(7, "l"), (7, "r")}
    assert by_folder["flyingthings3d/TRAIN/A/0000"] == {(f, s) for f in (7, 8, 9) for s in "lr"}
    # test: left views with ground truth only, every frame
    assert [(s.folder, s.frame_index, s.side) for s in lists["test"]] == [
        ("flyingthings3d/TEST/C/0003", f, "l") for f in (6, 7, 8)]
    # deterministic
    again = str(tmp_path / "again")
    make_sceneflow_splits(root, again, val_fraction=0.3, seed=0)
    for n in ("train", "val", "test"):
        with open(os.path.join(out, f"{n}_files.txt")) as a, open(os.path.join(again, f"{n}_files.txt")) as b:
            assert a.read() == b.read()
    # every listed sample loads
    ds = _dataset(root, lists["train"] + lists["val"])
    assert not ds.missing_files(limit=100)


def test_make_sceneflow_splits_script_with_all_subsets(tmp_path, capsys):
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                        "make_sceneflow_splits.py")
    spec = importlib.util.spec_from_file_location("make_sceneflow_splits", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    root = str(tmp_path / "sf")
    _tree_for_splits(root)
    out = str(tmp_path / "splits")
    script.main(["--data_path", root, "--out_dir", out, "--val_fraction", "0.2", "--seed", "1",
                 "--subsets", "flyingthings3d", "driving", "monkaa"])
    assert "train_files.txt" in capsys.readouterr().out
    samples = read_split_file(os.path.join(out, "train_files.txt")) + read_split_file(os.path.join(out, "val_files.txt"))
    folders = {s.folder for s in samples}
    assert {DRIVING_15, MONKAA} <= folders
    assert {s.frame_index for s in samples if s.folder == DRIVING_15} == {2}
    with pytest.raises(datasets.DatasetError, match="frames_finalpass"):
        make_sceneflow_splits(root, out, sceneflow_pass="final")


# ------------------------------------------------------------------------------- training

@pytest.mark.parametrize("sceneflow_pass,frame_ids", [
    ("clean", ["0"]),
    ("final", ["0", "-1", "1"]),
])
def test_a_few_training_steps_on_sceneflow(tmp_path, sceneflow_pass, frame_ids):
    from depth_hints.options import parse_train
    from depth_hints.trainer import Trainer
    root = str(tmp_path / "sf")
    for i, folder in enumerate(["flyingthings3d/TRAIN/A/0000", "flyingthings3d/TRAIN/B/0001"]):
        write_sequence(root, folder, range(6, 10), sceneflow_pass=sceneflow_pass, seed=i)
    split = str(tmp_path / "split")
    make_sceneflow_splits(root, split, sceneflow_pass=sceneflow_pass, val_fraction=0.5)
    opt = parse_train(["--dataset", "sceneflow", "--sceneflow_pass", sceneflow_pass, "--data_path", root,
                       "--split", split, "--height", str(H), "--width", str(W), "--batch_size", "2",
                       "--num_workers", "0", "--weights_init", "scratch", "--no_val", "--num_epochs", "1",
                       "--log_dir", str(tmp_path / "logs"), "--model_name", "sf", "--seed", "0",
                       "--log_frequency", "1000", "--frame_ids", *frame_ids, "--use_stereo"])
    trainer = Trainer(opt)
    assert isinstance(trainer.train_set, SceneFlowDataset)
    assert trainer.train_set.sceneflow_pass == sceneflow_pass
    summary = trainer.train()
    assert summary["steps"] == 2 and np.isfinite(summary["losses"]).all()
