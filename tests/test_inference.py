"""Tests for test_simple.py / depth_hints.inference and depth_hints.visualize."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

import networks
import test_simple
from depth_hints import inference
from depth_hints.checkpoints import save_weights_folder
from depth_hints.geometry import STEREO_SCALE_FACTOR
from depth_hints.visualize import colorize_disparity

FEED_H, FEED_W = 64, 96
INPUT_SIZE = (160, 120)  # (W, H), deliberately not the feed size nor square


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _save_model(folder: Path, use_stereo: bool) -> Path:
    torch.manual_seed(0)
    encoder = networks.ResnetEncoder(18, False)
    save_weights_folder(str(folder), {"encoder": encoder, "depth": networks.DepthDecoder(encoder.num_ch_enc)},
                        FEED_H, FEED_W, use_stereo)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    return {"stereo": _save_model(root / "stereo", True), "mono": _save_model(root / "mono", False)}


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data
    return Image.fromarray(data.astronaut()).resize(INPUT_SIZE, Image.BILINEAR)


# ----------------------------------------------------------------------------- colour map

def test_colorize_disparity_range_and_shape():
    disp = np.linspace(0.0, 1.0, 200).reshape(10, 20)
    colour = colorize_disparity(disp)
    assert colour.shape == (10, 20, 3) and colour.dtype == np.uint8
    magma = matplotlib.colormaps["magma"]
    np.testing.assert_array_equal(colour[0, 0], (np.array(magma(0.0)[:3]) * 255).astype(np.uint8))
    top = (np.array(magma(1.0)[:3]) * 255).astype(np.uint8)
    np.testing.assert_array_equal(colour[-1, -1], top)  # above the 95th percentile: saturated
    np.testing.assert_array_equal(colour[-1, -5], top)
    flat = colorize_disparity(np.full((4, 4), 0.3))
    assert flat.dtype == np.uint8 and (flat == flat[0, 0]).all()


# ----------------------------------------------------------------------------- test_simple

def test_single_image(tmp_path, models, astronaut):
    image = tmp_path / "astronaut.jpg"
    astronaut.save(image)
    assert test_simple.main(["--image_path", str(image), "--model_path", str(models["mono"]), "--no_cuda"]) == 0
    disp = np.load(tmp_path / "astronaut_disp.npy")
    assert disp.shape == (1, 1, FEED_H, FEED_W) and disp.dtype == np.float32
    assert disp.min() >= 1 / 100.0 and disp.max() <= 1 / 0.1  # scaled disparity
    with Image.open(tmp_path / "astronaut_disp.jpeg") as jpeg:
        assert jpeg.size == INPUT_SIZE and jpeg.mode == "RGB"


def test_metric_depth_for_a_stereo_model(tmp_path, models, astronaut):
    image = tmp_path / "astronaut.jpg"
    astronaut.save(image)
    out = tmp_path / "out"
    test_simple.main(["--image_path", str(image), "--model_path", str(models["stereo"]), "--output_dir", str(out)])
    test_simple.main(["--image_path", str(image), "--model_path", str(models["stereo"]), "--output_dir", str(out),
                      "--pred_metric_depth"])
    depth = np.load(out / "astronaut_depth.npy")
    disp = np.load(out / "astronaut_disp.npy")
    assert depth.shape == (1, 1, FEED_H, FEED_W)
    np.testing.assert_allclose(depth * disp, STEREO_SCALE_FACTOR, rtol=1e-5)  # 5.4 x (1 / disp)
    assert not (tmp_path / "astronaut_disp.jpeg").exists()  # --output_dir respected


def test_metric_depth_of_a_mono_model_warns(tmp_path, models, astronaut, capsys):
    astronaut.save(tmp_path / "a.jpg")
    test_simple.main(["--image_path", str(tmp_path / "a.jpg"), "--model_path", str(models["mono"]),
                      "--pred_metric_depth"])
    assert "WARNING" in capsys.readouterr().err
    assert (tmp_path / "a_depth.npy").exists()


def test_folder_skips_own_outputs(tmp_path, models, astronaut):
    for name in ("one", "two"):
        astronaut.save(tmp_path / f"{name}.jpeg")
    argv = ["--image_path", str(tmp_path), "--model_path", str(models["mono"]), "--ext", "jpeg"]
    assert inference.list_images(str(tmp_path), "jpeg") == [str(tmp_path / "one.jpeg"), str(tmp_path / "two.jpeg")]
    test_simple.main(argv)
    test_simple.main(argv)  # the *_disp.jpeg written by the first run must not become inputs
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["one.jpeg", "one_disp.jpeg", "one_disp.npy", "two.jpeg", "two_disp.jpeg", "two_disp.npy"]


def test_video_gives_per_frame_outputs(tmp_path, models):
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, INPUT_SIZE)
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write MJPG video here")
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer.write(rng.integers(0, 255, (INPUT_SIZE[1], INPUT_SIZE[0], 3), dtype=np.uint8))
    writer.release()
    assert test_simple.main(["--image_path", str(video), "--model_path", str(models["mono"])]) == 0
    jpegs = sorted(tmp_path.glob("clip_*_disp.jpeg"))
    assert [p.name for p in jpegs] == [f"clip_{i:06d}_disp.jpeg" for i in range(3)]
    with Image.open(jpegs[0]) as first:
        assert first.size == INPUT_SIZE


def test_missing_inputs_are_named(tmp_path, models, capsys):
    assert test_simple.main(["--image_path", str(tmp_path / "nope.jpg"), "--model_path", str(models["mono"])]) == 2
    assert "nope.jpg" in capsys.readouterr().err
    assert test_simple.main(["--image_path", str(tmp_path), "--model_path", str(models["mono"])]) == 2
    assert "--ext" in capsys.readouterr().err
    assert test_simple.main(["--image_path", str(tmp_path), "--model_path", str(tmp_path / "no_weights")]) == 2
    assert "no_weights" in capsys.readouterr().err


def test_to_input_tensor_shape_and_range(astronaut):
    tensor = inference.to_input_tensor(astronaut, FEED_W, FEED_H)
    assert tensor.shape == (1, 3, FEED_H, FEED_W) and tensor.dtype == torch.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0
