"""The training-resolution cache (depth_hints/cache.py, scripts/cache_training_data.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

import datasets
from depth_hints import augment, cache
from depth_hints.precompute import Shard
from depth_hints.splits import Sample, read_split_file
from conftest import FOLDER, make_kitti_tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 64, 192

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def kitti(tmp_path):
    """A KITTI tree stored larger than the training size (so the cache resizes), with hints."""
    make_kitti_tree(str(tmp_path), num_frames=5, height=100, width=300)
    return str(tmp_path)


def _spec(root, hints=True, **kw):
    return cache.CacheSpec(root, os.path.join(root, "split"), kw.pop("height", H), kw.pop("width", W),
                           "kitti", ".png", hints, None, **kw)


def _dataset(root, augment_on="cpu", training_cache=None, is_train=False):
    samples = read_split_file(os.path.join(root, "split", "train_files.txt"))
    return datasets.KITTIRAWDataset(root, samples, H, W, (0, -1, 1, "s"), 4, is_train=is_train,
                                    img_ext=".png", use_depth_hints=True,
                                    depth_hint_path=os.path.join(root, "depth_hints"),
                                    augment_on=augment_on, cache=training_cache)


def test_cache_holds_the_loaders_scale_0_bytes_and_hints(kitti):
    result = cache.build(_spec(kitti), progress=False)
    # samples 1..3 l/r read frames 0..4 of both sides: 10 frames; 6 hint samples
    assert result["complete"] and (result["frames"], result["hints"]) == (10, 6)
    opened = cache.open_cache(_spec(kitti))
    decoded = _dataset(kitti)
    for index, sample in enumerate(decoded.samples):
        item = decoded[index]
        for f, frame in ((0, sample), (-1, Sample(FOLDER, sample.frame_index - 1, sample.side)),
                         ("s", Sample(FOLDER, sample.frame_index, "r" if sample.side == "l" else "l"))):
            expected = (item[("color", f, 0)] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            assert np.array_equal(opened.image(frame), expected)
        np.testing.assert_array_equal(opened.hint(sample), item["depth_hint"][0].numpy().astype(np.float16))


@pytest.mark.parametrize("augment_on", ["cpu", "device"])
def test_cached_loader_gives_the_decoded_samples(kitti, augment_on):
    cache.build(_spec(kitti), progress=False)
    opened = cache.open_cache(_spec(kitti))
    plain, cached = _dataset(kitti, augment_on, is_train=True), _dataset(kitti, augment_on, opened, True)
    for ds in (plain, cached):
        ds.flip_probability = ds.color_aug_probability = 0.5
    for index in range(len(plain)):
        torch.manual_seed(index)
        a = plain[index]
        torch.manual_seed(index)
        b = cached[index]
        assert a.keys() == b.keys()
        for key in a:
            if key in ("depth_hint",):  # float16 in the cache
                torch.testing.assert_close(b[key], a[key], rtol=2 ** -11, atol=0)
            else:
                assert torch.equal(a[key], b[key]), key


def test_shards_resume_and_verify(kitti):
    spec = _spec(kitti)
    first = cache.build(spec, shard=Shard(0, 2), progress=False)
    assert not first["complete"] and first["written"] == 5 + 3
    with pytest.raises(cache.CacheError, match="incomplete.*cache_training_data.py"):
        cache.open_cache(spec)
    second = cache.build(spec, shard=Shard(1, 2), progress=False)
    assert second["complete"] and second["written"] == 5 + 3
    assert cache.build(spec, progress=False)["written"] == 0  # nothing left: resumable
    # a row lost by a killed run (not marked done) is redone, and only it
    folder = spec.default_dir()
    done = np.load(os.path.join(folder, "images_done.npy"), mmap_mode="r+")
    images = np.load(os.path.join(folder, "images.npy"), mmap_mode="r+")
    done[3] = 0
    images[3] = 0
    done.flush(), images.flush()
    del done, images
    assert cache.build(spec, progress=False)["written"] == 1
    assert cache.verify(spec, progress=False) == {"checked": 16, "bad": [], "missing": 0}
    images = np.load(os.path.join(folder, "images.npy"), mmap_mode="r+")
    images[2, 0, 0] ^= 1
    images.flush()
    del images
    assert len(cache.verify(spec, progress=False)["bad"]) == 1


def test_stale_caches_are_refused_with_the_rebuild_command(kitti):
    spec = _spec(kitti)
    cache.build(spec, progress=False)
    assert cache.open_cache(spec) is not None
    with pytest.raises(cache.CacheError, match=r"width.*cache_training_data.py .*--width 224"):
        cache.open_cache(_spec(kitti, width=224), spec.default_dir())
    image = os.path.join(kitti, FOLDER, "image_02", "data", f"{2:010d}.png")
    os.utime(image, ns=(os.stat(image).st_atime_ns, os.stat(image).st_mtime_ns + 10 ** 9))
    with pytest.raises(cache.CacheError) as caught:
        cache.open_cache(spec)
    message = str(caught.value)
    assert image in message and "--overwrite" in message and "\n" not in message
    with pytest.raises(cache.CacheError, match="--overwrite"):
        cache.build(spec, progress=False)
    assert cache.build(spec, overwrite=True, progress=False)["complete"]
    assert cache.open_cache(spec) is not None
    hint = os.path.join(kitti, "depth_hints", FOLDER, "image_02", f"{1:010d}.npy")
    np.save(hint, np.zeros((100, 300), np.float32))
    with pytest.raises(cache.CacheError, match="changed since"):
        cache.open_cache(spec)
    cache.build(spec, overwrite=True, progress=False)
    with open(os.path.join(kitti, "split", "train_files.txt"), "a") as f:
        f.write(f"{FOLDER} 1 l\n")
    with pytest.raises(cache.CacheError, match="split files"):
        cache.open_cache(spec)
    with pytest.raises(cache.CacheError, match="holds no training cache"):
        cache.open_cache(spec, os.path.join(kitti, "elsewhere"))
    assert cache.open_cache(_spec(kitti, height=96)) is None  # none by convention: decode


def test_a_split_folder_given_relative_or_absolute_is_the_same_cache(kitti, monkeypatch):
    """The demo builds its cache with the absolute split folder; train.py may be given a
    relative one (or the other way round): the same folder, the same cache."""
    cache.build(_spec(kitti), progress=False)
    monkeypatch.chdir(kitti)
    relative = cache.CacheSpec(kitti, "split", H, W, "kitti", ".png", True, None)
    assert cache.open_cache(relative, _spec(kitti).default_dir()) is not None


def test_script_builds_verifies_and_train_finds_the_cache(kitti):
    env = dict(os.environ, PYTHONPATH=ROOT)
    args = [sys.executable, os.path.join(ROOT, "scripts", "cache_training_data.py"), "--data_path", kitti,
            "--split", os.path.join(kitti, "split"), "--height", str(H), "--width", str(W), "--png",
            "--use_depth_hints", "--quiet"]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "10 frames, 6 hints" in done.stdout and "disk use" in done.stdout
    verified = subprocess.run(args + ["--verify"], env=env, capture_output=True, text=True)
    assert verified.returncode == 0 and "verified 16 rows: 0 differ" in verified.stdout
    bad = subprocess.run(args[:-1] + ["--shard", "5/2"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1

    from depth_hints.options import parse_train
    from depth_hints.trainer import build_datasets
    opt = parse_train(["--data_path", kitti, "--split", os.path.join(kitti, "split"), "--png",
                       "--height", str(H), "--width", str(W), "--use_depth_hints", "--use_stereo",
                       "--frame_ids", "0", "--no_cuda"])
    train_set, val_set = build_datasets(opt)
    assert train_set.cache is not None and train_set.augment_on == "device"
    batch = default_collate([train_set[0], train_set[1]])
    inputs = augment.build_inputs(batch, "cpu", (0, 1, 2, 3))
    assert inputs[("color", 0, 0)].shape == (2, 3, H, W) and inputs[("color", 0, 3)].shape == (2, 3, H // 8, W // 8)
    opt = parse_train(["--data_path", kitti, "--split", os.path.join(kitti, "split"), "--png",
                       "--height", str(H), "--width", str(W), "--no_cache", "--augment_on", "cpu"])
    train_set, _ = build_datasets(opt)
    assert train_set.cache is None and train_set.augment_on == "cpu"
    far = ["--data_path", kitti, "--split", os.path.join(kitti, "split"), "--png", "--height", str(H),
           "--width", str(W), "--use_depth_hints", "--use_stereo", "--frame_ids", "0", "-2", "2", "--no_cuda"]
    assert cache.for_training(parse_train(far)) is None  # frames +-2 are not cached: decode
    with pytest.raises(cache.CacheError, match="drop --cache_dir"):
        cache.for_training(parse_train(far + ["--cache_dir", opened_dir(kitti)]))


def opened_dir(root):
    return _spec(root).default_dir()


def test_another_layout_cityscapes_crop(tmp_path):
    """Cityscapes keeps the top 3/4 of the rows before resizing: the cache does the same."""
    from depth_hints.synthetic.cityscapes_writer import write_synthetic_cityscapes
    root = str(tmp_path / "cs")
    summary = write_synthetic_cityscapes(root, width=256, height=128)
    folder = summary["folders"][0]
    split = tmp_path / "split"
    split.mkdir()
    for name in ("train_files.txt", "val_files.txt"):
        (split / name).write_text(f"{folder} 19 l\n")
    spec = cache.CacheSpec(root, str(split), 64, 128, "cityscapes", ".png", False)
    result = cache.build(spec, progress=False)
    assert result["complete"] and result["frames"] >= 2
    opened = cache.open_cache(spec)
    for augment_on in ("cpu", "device"):
        plain = datasets.CityscapesDataset(root, [f"{folder} 19 l"], 64, 128, (0, "s"), 4, img_ext=".png",
                                           augment_on=augment_on)
        cached = datasets.CityscapesDataset(root, [f"{folder} 19 l"], 64, 128, (0, "s"), 4, img_ext=".png",
                                            augment_on=augment_on, cache=opened)
        a, b = plain[0], cached[0]
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_each_rank_reads_only_its_own_rows(kitti):
    """Under DDP every rank's sampler picks its samples and the loader touches only their rows
    of the shared memory map (targets and the frames they read), nothing else."""
    from depth_hints.distributed import DistContext, ResumableSampler
    cache.build(_spec(kitti), progress=False)
    opened = cache.open_cache(_spec(kitti))
    read = {}
    for rank in (0, 1):
        tracked = cache.TrainingCache.__new__(cache.TrainingCache)
        tracked.__dict__.update(opened.__getstate__())
        rows = read.setdefault(rank, set())
        original = tracked.image
        tracked.image = lambda sample, _o=original, _r=rows: (_r.add(tracked.frame_rows[cache._key(sample)]), _o(sample))[1]
        ds = _dataset(kitti, "device", tracked, is_train=True)
        sampler = ResumableSampler(ds, DistContext(rank=rank, world_size=2), seed=0)
        sampler.set_epoch(0)
        mine = list(sampler)
        for i in mine:
            ds[i]
        expected = set()
        for i in mine:
            s = ds.samples[i]
            for frame in (s, Sample(s.folder, s.frame_index - 1, s.side), Sample(s.folder, s.frame_index + 1, s.side),
                          Sample(s.folder, s.frame_index, "r" if s.side == "l" else "l")):
                expected.add(opened.frame_rows[cache._key(frame)])
        assert rows == expected
    targets = [{opened.frame_rows[cache._key(_dataset(kitti).samples[i])] for i in
                ResumableSampler(_dataset(kitti), DistContext(rank=r, world_size=2), seed=0)} for r in (0, 1)]
    assert not targets[0] & targets[1]
