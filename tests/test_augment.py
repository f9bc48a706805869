"""Augmentation on the device (depth_hints/augment.py) against the PIL loader path."""
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

import datasets
from datasets.mono_dataset import draw_color_jitter, pil_color_jitter
from depth_hints import augment, geometry, objective
from depth_hints.splits import read_split_file

# PIL truncates to uint8 after each operation (< 1/255), the device does not; the contrast
# mean and the greyscale of saturation are rounded to 8 bits there (< 1/255 more).
BLEND_TOL = 2 / 255
# The hue runs through PIL's 8-bit HSV: H is quantised to 1/255 of a turn and the shift wraps
# modulo 256 instead of 255, up to 2/255 of a turn in all; a turn moves a channel by 6 * V * S,
# so up to 12/255, plus S's 8-bit step (< 1/255). Measured on uniform random RGB: max 11.5/255,
# mean 0.60-0.70/255.
HUE_MAX_TOL = 13 / 255
HUE_MEAN_TOL = 1 / 255


def _image(seed=0, h=48, w=96):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _tensor(a):
    return torch.from_numpy(np.array(a)).permute(2, 0, 1).float()[None] / 255


def _pil(img, order, factors):
    return _tensor(np.asarray(pil_color_jitter(order, factors)(Image.fromarray(img))))


@pytest.mark.parametrize("size", [(96, 32), (48, 16), (40, 24)])
def test_lanczos_matches_pil(size):
    img = _image(1, 64, 192)
    w, h = size
    ref = np.asarray(Image.fromarray(img).resize((w, h), Image.LANCZOS)).astype(int)
    got = augment.resize_lanczos(torch.from_numpy(img).permute(2, 0, 1).float(), h, w)
    diff = np.abs(got.permute(1, 2, 0).numpy().astype(int) - ref)
    assert diff.max() <= 1  # float32 sums on the other side of a rounding tie
    assert (diff > 0).mean() < 2e-3


def test_lanczos_weights_sum_to_one():
    m = augment.pil_lanczos_matrix(192, 96)
    np.testing.assert_allclose(m.sum(1), 1, atol=24 * 2 ** -22)


@pytest.mark.parametrize("op,factor", [(0, 0.8), (0, 1.2), (1, 0.8), (1, 1.17), (2, 0.8), (2, 1.2)])
def test_blend_ops_match_pil(op, factor):
    img = _image(2)
    factors = [1.0, 1.0, 1.0, 0.0]
    factors[op] = factor
    ref = _pil(img, [op], factors)
    got = augment.JITTER_OPS[op](_tensor(img), torch.tensor([factor]))
    assert (got - ref).abs().max() <= BLEND_TOL


@pytest.mark.parametrize("hue", [-0.1, -0.04, 0.03, 0.1])
def test_hue_matches_pil_within_its_8bit_hsv(hue):
    img = _image(3)
    ref = _pil(img, [3], [1.0, 1.0, 1.0, hue])
    diff = (augment.adjust_hue(_tensor(img), torch.tensor([hue])) - ref).abs()
    assert diff.max() <= HUE_MAX_TOL
    assert diff.mean() <= HUE_MEAN_TOL


def test_hue_zero_is_identity_and_a_full_turn_wraps():
    x = _tensor(_image(4))
    torch.testing.assert_close(augment.adjust_hue(x, torch.tensor([0.0])), x, atol=1e-6, rtol=0)
    # pure red rotated by a third of a turn (85/255) is nearly pure green
    red = torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    out = augment.adjust_hue(red, torch.tensor([1 / 3])).flatten()
    torch.testing.assert_close(out, torch.tensor([6 * (1 / 3 - 85 / 255), 1.0, 0.0]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", range(4))
def test_composed_jitter_matches_pil(seed):
    import random
    order, factors = draw_color_jitter(random.Random(seed))
    img = _image(10 + seed)
    ref = _pil(img, order, factors)
    got = augment.color_jitter(_tensor(img)[:, None], torch.tensor([order]), torch.tensor([factors]))[:, 0]
    diff = (got - ref).abs()
    assert diff.max() <= HUE_MAX_TOL + 3 * BLEND_TOL
    assert diff.mean() <= HUE_MEAN_TOL + BLEND_TOL
    no_hue = list(factors[:3]) + [0.0]
    order_no_hue = [i for i in order if i != 3]
    got = augment.color_jitter(_tensor(img)[:, None], torch.tensor([order_no_hue]), torch.tensor([no_hue]))[:, 0]
    assert (got - _pil(img, order_no_hue, no_hue)).abs().max() <= 3 * BLEND_TOL


def test_batched_jitter_is_per_sample():
    """Samples with different orders and factors in one batch get their own jitter."""
    import random
    params = [draw_color_jitter(random.Random(s)) for s in range(5)]
    x = torch.stack([_tensor(_image(20 + s))[0] for s in range(5)])[:, None].repeat(1, 2, 1, 1, 1)
    batched = augment.color_jitter(x, torch.tensor([p[0] for p in params]), torch.tensor([p[1] for p in params]))
    for s, (order, factors) in enumerate(params):
        one = augment.color_jitter(x[s:s + 1], torch.tensor([order]), torch.tensor([factors]))
        torch.testing.assert_close(batched[s:s + 1], one, atol=0, rtol=0)


# -- the loader's compact batches --------------------------------------------------------------
def _dataset(root, augment_on, frame_ids=(0, -1, 1, "s"), is_train=True):
    samples = read_split_file(os.path.join(root, "split", "train_files.txt"))
    return datasets.KITTIRAWDataset(root, samples, 64, 192, frame_ids, 4, is_train=is_train, img_ext=".png",
                                    use_depth_hints=True, depth_hint_path=os.path.join(root, "depth_hints"),
                                    augment_on=augment_on)


def _batches(root, flip, jitter, frame_ids=(0, -1, 1, "s"), seed=5, v1=False):
    """The same samples through both paths with the same random draws."""
    out = {}
    for mode in ("cpu", "device"):
        ds = _dataset(root, mode, frame_ids)
        ds.flip_probability, ds.color_aug_probability = flip, jitter
        torch.manual_seed(seed)
        batch = default_collate([ds[i] for i in range(len(ds))])
        out[mode] = batch if mode == "cpu" else augment.build_inputs(batch, "cpu", (0, 1, 2, 3), v1)
    return out["cpu"], out["device"]


@pytest.mark.parametrize("flip", [0.0, 0.5, 1.0])
def test_device_path_without_jitter_is_the_pil_path(tiny_kitti, flip):
    cpu, dev = _batches(tiny_kitti, flip, 0.0)
    for f in (0, -1, 1, "s"):
        assert torch.equal(dev[("color", f, 0)], cpu[("color", f, 0)])  # byte for byte
        if f != "s":  # the networks never see the other view
            assert torch.equal(dev[("color_aug", f, 0)], cpu[("color", f, 0)])
    assert ("color_aug", "s", 0) not in dev
    for s in (1, 2, 3):  # frame 0's lower levels: PIL's LANCZOS, up to rare 1/255 ties
        diff = (dev[("color", 0, s)] - cpu[("color", 0, s)]).abs()
        assert diff.max() <= 1 / 255 + 1e-6 and (diff > 0).float().mean() < 5e-3
        assert ("color", -1, s) not in dev and ("color_aug", 0, s) not in dev
    for key in ("stereo_T", "depth_hint", "depth_hint_mask", ("K", 0), ("inv_K", 2)):
        assert torch.equal(dev[key], cpu[key])


def test_v1_multiscale_builds_every_frames_levels(tiny_kitti):
    cpu, dev = _batches(tiny_kitti, 0.5, 0.0, v1=True)
    for f in (0, -1, 1, "s"):
        for s in (1, 2, 3):
            assert (dev[("color", f, s)] - cpu[("color", f, s)]).abs().max() <= 1 / 255 + 1e-6


def _loss(batch, scales):
    cfg = objective.LossConfig(frame_ids=(0, "s"), scales=scales, use_depth_hints=True)
    gen = torch.Generator().manual_seed(0)
    b, _, h, w = batch[("color", 0, 0)].shape
    outputs = {("disp", s): torch.rand(b, 1, h // 2 ** s, w // 2 ** s, generator=gen) * 0.3 + 0.01
               for s in scales}
    objective.synthesise_views(batch, outputs, cfg)
    return objective.compute_losses(batch, outputs, cfg, torch.Generator().manual_seed(1))["loss"]


def test_device_path_without_jitter_gives_the_same_loss(tiny_kitti):
    cpu, dev = _batches(tiny_kitti, 0.5, 0.0, frame_ids=(0, "s"))
    assert torch.equal(_loss(dev, (0,)), _loss(cpu, (0,)))
    # all scales: only the smoothness weights of levels 1-3 see the rare 1/255 ties
    torch.testing.assert_close(_loss(dev, (0, 1, 2, 3)), _loss(cpu, (0, 1, 2, 3)), rtol=1e-5, atol=0)


def test_device_jitter_matches_the_pil_loader_with_the_same_draws(tiny_kitti):
    cpu, dev = _batches(tiny_kitti, 0.5, 1.0)
    for f in (0, -1, 1):
        assert torch.equal(dev[("color", f, 0)], cpu[("color", f, 0)])
        diff = (dev[("color_aug", f, 0)] - cpu[("color_aug", f, 0)]).abs()
        assert diff.max() <= HUE_MAX_TOL + 3 * BLEND_TOL and diff.mean() <= HUE_MEAN_TOL + BLEND_TOL
        assert not torch.equal(dev[("color_aug", f, 0)], dev[("color", f, 0)])


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_device_path_flip_is_photo_consistent(tiny_kitti, flip):
    """The other view warped with the hint, K and stereo_T reproduces the target, flipped or
    not: image, intrinsics, stereo sign and hint move together in the compact batch."""
    ds = _dataset(tiny_kitti, "device")
    ds.flip_probability, ds.color_aug_probability = flip, 0.0
    batch = augment.build_inputs(default_collate([ds[0], ds[1]]), "cpu", (0,))
    warped = geometry.warp(batch[("color", "s", 0)], batch["depth_hint"], batch[("K", 0)],
                           batch[("inv_K", 0)], batch["stereo_T"])
    err = (warped - batch[("color", 0, 0)]).abs()[..., 8:-8].mean()
    assert err < 0.02
    flipped_sign = batch["stereo_T"].clone()
    flipped_sign[:, 0, 3] *= -1
    bad = geometry.warp(batch[("color", "s", 0)], batch["depth_hint"], batch[("K", 0)],
                        batch[("inv_K", 0)], flipped_sign)
    assert (bad - batch[("color", 0, 0)]).abs()[..., 8:-8].mean() > 2 * err


def test_compact_sample_carries_the_drawn_parameters(tiny_kitti):
    ds = _dataset(tiny_kitti, "device")
    ds.flip_probability, ds.color_aug_probability = 1.0, 1.0
    item = ds[0]
    assert item[(augment.U8, 0)].dtype == torch.uint8 and item[(augment.U8, 0)].shape == (3, 64, 192)
    assert ("color", 0, 1) not in item and bool(item[augment.DO_FLIP]) and bool(item[augment.DO_JITTER])
    assert sorted(item[augment.JITTER_ORDER].tolist()) == [0, 1, 2, 3]
    assert -0.1 <= float(item[augment.JITTER_FACTORS][3]) <= 0.1
