"""Dataset samples from a KITTI-layout folder made in tmp_path."""
import os

import numpy as np
import pytest
import torch

import datasets
from datasets import mono_dataset
from depth_hints import geometry
from depth_hints.hint_files import HintFileError, hint_file_path
from depth_hints.splits import SplitError, read_split_file
from conftest import FOLDER


def _dataset(root, frame_ids=(0, -1, 1, "s"), hints=True, is_train=False, **kw):
    samples = read_split_file(os.path.join(root, "split", "train_files.txt"))
    return datasets.KITTIRAWDataset(root, samples, 64, 192, frame_ids, 4, is_train=is_train, img_ext=".png",
                                    use_depth_hints=hints, depth_hint_path=os.path.join(root, "depth_hints"), **kw)


def test_sample_keys_and_shapes(tiny_kitti):
    item = _dataset(tiny_kitti)[0]
    for f in (0, -1, 1, "s"):
        for s in range(4):
            assert item[("color", f, s)].shape == (3, 64 // 2 ** s, 192 // 2 ** s)
            assert item[("color_aug", f, s)].shape == item[("color", f, s)].shape
    for s in range(4):
        torch.testing.assert_close(item[("K", s)] @ item[("inv_K", s)], torch.eye(4), atol=1e-5, rtol=0)
        assert item[("K", s)][0, 0] == pytest.approx(0.58 * 192 / 2 ** s)
    assert item["depth_hint"].shape == (1, 64, 192)
    assert item["depth_hint_mask"].min() == 1
    assert item["stereo_T"][0, 3] == pytest.approx(-0.1)  # first sample is a left frame


def test_right_frame_stereo_sign(tiny_kitti):
    ds = _dataset(tiny_kitti)
    assert ds.samples[1].side == "r"
    assert ds[1]["stereo_T"][0, 3] == pytest.approx(0.1)


def test_flip_mirrors_image_hint_and_stereo_sign(tiny_kitti):
    plain = _dataset(tiny_kitti)[0]
    ds = _dataset(tiny_kitti, is_train=True)
    ds.flip_probability, ds.color_aug_probability = 1.0, 0.0
    flipped = ds[0]
    torch.testing.assert_close(flipped[("color", 0, 0)], plain[("color", 0, 0)].flip(-1))
    torch.testing.assert_close(flipped[("color", "s", 0)], plain[("color", "s", 0)].flip(-1))
    torch.testing.assert_close(flipped["depth_hint"], plain["depth_hint"].flip(-1))
    assert flipped["stereo_T"][0, 3] == pytest.approx(-plain["stereo_T"][0, 3])


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_samples_are_photo_consistent_flipped_or_not(tiny_kitti, flip):
    """Warping the other view with the hint and stereo_T reproduces the target, also after a
    flip: the image, hint and stereo sign move together."""
    ds = _dataset(tiny_kitti, is_train=True)
    ds.flip_probability, ds.color_aug_probability = flip, 0.0
    for index in (0, 1):
        item = ds[index]
        warped = geometry.warp(item[("color", "s", 0)][None], item["depth_hint"][None], item[("K", 0)][None],
                               item[("inv_K", 0)][None], item["stereo_T"][None])
        err = (warped - item[("color", 0, 0)][None]).abs()[..., 8:-8].mean()
        assert err < 0.02


def test_colour_augmentation_only_changes_color_aug(tiny_kitti):
    ds = _dataset(tiny_kitti, is_train=True)
    ds.flip_probability, ds.color_aug_probability = 0.0, 1.0
    torch.manual_seed(3)
    item = ds[0]
    plain = _dataset(tiny_kitti)[0]
    torch.testing.assert_close(item[("color", 0, 0)], plain[("color", 0, 0)])
    assert not torch.allclose(item[("color_aug", 0, 0)], item[("color", 0, 0)])



@pytest.mark.parametrize("hue", [-0.5, -0.1, -0.0999, -0.002, 0.0, 0.002, 0.0999, 0.1, 0.5])
def test_hue_shift_is_torchvisions_byte_for_byte(hue):
    """int(hue * 255) truncates toward zero and wraps modulo 256, as torchvision's adjust_hue."""
    TF = pytest.importorskip("torchvision.transforms.functional")
    from PIL import Image
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8))
    assert np.array_equal(np.asarray(mono_dataset.shift_hue(img, hue)), np.asarray(TF.adjust_hue(img, hue)))


def test_colour_jitter_is_torchvisions_byte_for_byte():
    """Same draws (order, then brightness/contrast/saturation/hue factors) and the same PIL
    operations as before, when torchvision's functional ops did the work: augmentation unchanged."""
    import random
    TF = pytest.importorskip("torchvision.transforms.functional")
    from PIL import Image
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 24, 3), dtype=np.uint8))
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for seed in range(20):
        rng = random.Random(seed)
        order = list(range(4))
        rng.shuffle(order)
        factors = [rng.uniform(*mono_dataset.COLOR_JITTER[k])
                   for k in ("brightness", "contrast", "saturation", "hue")]
        expected = img
        for i in order:
            expected = ops[i](expected, factors[i])
        ours = mono_dataset.random_color_jitter(random.Random(seed))(img)
        assert np.array_equal(np.asarray(ours), np.asarray(expected)), seed


def test_missing_image_names_the_file_and_suggests_png(tiny_kitti):
    samples = read_split_file(os.path.join(tiny_kitti, "split", "train_files.txt"))
    ds = datasets.KITTIRAWDataset(tiny_kitti, samples, 64, 192, (0, "s"), 4, img_ext=".jpg")
    with pytest.raises(datasets.DatasetError, match=r"0000000001\.jpg.*--png"):
        ds[0]


def test_corrupt_and_misshapen_hints(tiny_kitti):
    ds = _dataset(tiny_kitti, frame_ids=(0, "s"))
    path = hint_file_path(os.path.join(tiny_kitti, "depth_hints"), FOLDER, 1, "l")
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY garbage")
    with pytest.raises(HintFileError, match="corrupt"):
        ds[0]
    np.save(path, np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(HintFileError, match="shape"):
        ds[0]
    os.remove(path)
    assert ds.missing_files() == [path]


def test_float16_hint_loads_as_float32(tiny_kitti):
    path = hint_file_path(os.path.join(tiny_kitti, "depth_hints"), FOLDER, 1, "l")
    np.save(path, np.full((1, 32, 96), 2.5, np.float16))
    item = _dataset(tiny_kitti, frame_ids=(0, "s"))[0]
    assert item["depth_hint"].dtype == torch.float32 and item["depth_hint"].shape == (1, 64, 192)
    assert item["depth_hint"].max() == 2.5


def test_sizes_must_be_multiples_of_32(tiny_kitti):
    with pytest.raises(ValueError, match="multiples of 32"):
        datasets.KITTIRAWDataset(tiny_kitti, [], 60, 192, (0,), 4)


def test_malformed_split_line(tmp_path):
    path = tmp_path / "train_files.txt"
    path.write_text("a/b 1 l\na/b x l\n")
    with pytest.raises(SplitError, match=r"train_files.txt:2"):
        read_split_file(path)


def test_odometry_path_layout(tmp_path):
    ds = datasets.KITTIOdomDataset(str(tmp_path), ["9 5 l"], 64, 192, (0,), 4, img_ext=".png")
    assert ds.image_path("9", 5, "r").endswith(os.path.join("sequences", "09", "image_3", "000005.png"))


def test_dense_ground_truth_loaded_when_asked(tiny_kitti):
    import cv2
    d = os.path.join(tiny_kitti, FOLDER, "proj_depth", "groundtruth", "image_02")
    os.makedirs(d)
    cv2.imwrite(os.path.join(d, "0000000001.png"), np.full((375, 1242), 2560, np.uint16))
    item = _dataset(tiny_kitti, frame_ids=(0, "s"), hints=False, load_depth_gt=True)[0]
    assert item["depth_gt"].shape == (1, 375, 1242) and item["depth_gt"].max() == 10.0


def test_every_dataset_choice_has_a_loader():
    from depth_hints.options import DATASETS
    for name in DATASETS:
        assert issubclass(datasets.dataset_class(name), datasets.MonoDataset)
    assert datasets.dataset_class("kitti_test") is datasets.KITTIRAWDataset
    with pytest.raises(ValueError, match="--dataset"):
        datasets.dataset_class("nyu")


def test_to_tensor_equals_torchvisions():
    """The loader's own to_tensor (no torchvision import at start-up) gives torchvision's values."""
    import torchvision.transforms.functional as TF
    from PIL import Image
    from datasets.mono_dataset import to_tensor
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    ours = to_tensor(img)
    assert ours.is_contiguous() and ours.dtype == torch.float32
    assert torch.equal(ours, TF.to_tensor(img))
