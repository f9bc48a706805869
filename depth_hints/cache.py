"""The training-resolution cache: every frame a split reads, as uint8 at the training size.

    python scripts/cache_training_data.py --data_path kitti_data --split eigen_zhou \
        --height 192 --width 640 [--png] [--use_depth_hints] [--dataset kitti]

One folder per (split, height, width, image extension), by default
``<data_path>/training_cache/<split>_<H>x<W>[_png]``:

  index.json       what was cached: options, split digest, the frames and hint samples in
                   row order, each source file's size and mtime (staleness)
  images.npy       uint8 [N, H, W, 3]: the frames exactly as the loader's scale 0 (the layout's
                   crop, then PIL LANCZOS to the training size: the same bytes), unflipped
  hints.npy        float16 [M, H, W]: the target's hint at the training size (nearest), 0 = none
  images_done.npy, hints_done.npy   uint8 [N], [M]: 1 where a row is written (resume)

The frames: every sample of train_files.txt and val_files.txt, its other stereo view and its
temporal neighbours -1 / +1 where they exist, so one cache serves mono, stereo and both.
Arrays are memory-mapped: the loader copies rows and decodes nothing; under DDP each rank
touches only the rows of its own samples. Written like the precompute: a row is marked done
only after its bytes are flushed (a killed run redoes at most one chunk), resumable, ``--shard
I/N`` (rows i with i % N == I), ``--verify`` recomputes and compares every row of the shard.
A cache whose options, split, source images or hint files changed is refused with one line
naming the command that rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from .atomic import atomic_write
from .errors import DepthHintsError
from .splits import Sample, read_split_file, split_file

CACHE_VERSION = 1
TEMPORAL_OFFSETS = (-1, 1)
FLUSH_EVERY = 64  # rows written between flushes (and done marks)
SPLIT_FILES = ("train_files.txt", "val_files.txt")


class CacheError(DepthHintsError, RuntimeError):
    """A missing, incomplete or stale training cache; the message names the command to run."""


@dataclass(frozen=True)
class CacheSpec:
    """What a cache is for: the options that decide its bytes."""
    data_path: str
    split: str
    height: int
    width: int
    dataset: str = "kitti"
    img_ext: str = ".jpg"
    use_depth_hints: bool = False
    depth_hint_path: str | None = None
    sceneflow_pass: str = "clean"

    @classmethod
    def from_options(cls, opt) -> "CacheSpec":
        return cls(opt.data_path, opt.split, opt.height, opt.width, opt.dataset,
                   ".png" if opt.png else ".jpg", bool(opt.use_depth_hints),
                   getattr(opt, "depth_hint_path", None), getattr(opt, "sceneflow_pass", "clean"))

    @property
    def hint_root(self) -> str:
        return self.depth_hint_path or os.path.join(self.data_path, "depth_hints")

    def default_dir(self) -> str:
        name = os.path.basename(os.path.normpath(self.split))
        return os.path.join(self.data_path, "training_cache",
                            f"{name}_{self.height}x{self.width}{'_png' if self.img_ext == '.png' else ''}")

    def command(self, cache_dir: str | None = None, extra: str = "") -> str:
        """The command line that (re)builds this cache."""
        parts = ["python scripts/cache_training_data.py", f"--data_path {self.data_path}",
                 f"--split {self.split}", f"--height {self.height}", f"--width {self.width}"]
        if self.dataset != "kitti":
            parts.append(f"--dataset {self.dataset}")
        if self.img_ext == ".png":
            parts.append("--png")
        if self.use_depth_hints:
            parts.append("--use_depth_hints")
            if self.depth_hint_path:
                parts.append(f"--depth_hint_path {self.depth_hint_path}")
        if self.dataset == "sceneflow" and self.sceneflow_pass != "clean":
            parts.append(f"--sceneflow_pass {self.sceneflow_pass}")
        if cache_dir and os.path.abspath(cache_dir) != os.path.abspath(self.default_dir()):
            parts.append(f"--cache_dir {cache_dir}")
        return " ".join(parts) + extra

    def identity(self) -> dict:
        """The fields a cache must agree on (paths by their absolute form)."""
        split = os.path.abspath(self.split) if os.path.isdir(self.split) else self.split  # a folder or a name
        return {"version": CACHE_VERSION, "split": split, "height": self.height,
                "width": self.width, "dataset": self.dataset, "img_ext": self.img_ext,
                "use_depth_hints": self.use_depth_hints,
                "hint_root": os.path.abspath(self.hint_root) if self.use_depth_hints else None,
                "sceneflow_pass": self.sceneflow_pass if self.dataset == "sceneflow" else None}

    def layout(self):
        import datasets
        extra = {"sceneflow_pass": self.sceneflow_pass} if self.dataset == "sceneflow" else {}
        return datasets.make_layout(self.dataset, self.data_path, img_ext=self.img_ext, **extra)


def _key(sample: Sample) -> str:
    return f"{sample.folder} {sample.frame_index} {sample.side}"


def _stat(path: str) -> list:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def split_digest(spec: CacheSpec) -> str:
    """sha1 of the split's train and val files."""
    digest = hashlib.sha1()
    for name in SPLIT_FILES:
        with open(split_file(spec.split, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def plan(spec: CacheSpec) -> dict:
    """The index of a cache of ``spec``: identity, split digest, frames (with their source
    files' stats) and hint samples, in row order. Reads the split and stats the files."""
    import datasets
    layout = spec.layout()
    named = datasets.layout_class(spec.dataset).named_frames
    frames, hints = {}, {}
    for name in SPLIT_FILES:
        for sample in read_split_file(split_file(spec.split, name), named_frames=named):
            layout.check_sample(sample, name)
            own = layout.image_path(sample.folder, sample.frame_index, sample.side)
            if not os.path.isfile(own):
                raise CacheError(f"{own} (from {name} of --split {spec.split}) does not exist; "
                                 f"check --data_path, --png and the split.")
            candidates = [sample, Sample(sample.folder, sample.frame_index,
                                         {"l": "r", "r": "l"}[sample.side])]
            for offset in TEMPORAL_OFFSETS:
                try:
                    candidates.append(layout.neighbour(sample, offset))
                except (DepthHintsError, LookupError, ValueError):
                    pass  # no temporal neighbour in this layout (or at a sequence's end)
            for frame in candidates:
                key = _key(frame)
                if key not in frames:
                    path = layout.image_path(frame.folder, frame.frame_index, frame.side)
                    if os.path.isfile(path):
                        frames[key] = [frame.folder, frame.frame_index, frame.side, *_stat(path)]
            if spec.use_depth_hints and _key(sample) not in hints:
                from .hint_files import hint_file_path
                path = hint_file_path(spec.hint_root, sample.folder, sample.frame_index, sample.side)
                if not os.path.isfile(path):
                    if name != SPLIT_FILES[0]:
                        continue  # validation hints are cached where they exist
                    raise CacheError(f"hint file {path} is missing: run precompute_depth_hints.py "
                                     f"for --split {spec.split} first, or leave out --use_depth_hints.")
                hints[_key(sample)] = [sample.folder, sample.frame_index, sample.side, *_stat(path)]
    return {**spec.identity(), "split_digest": split_digest(spec),
            "frames": list(frames.values()), "hints": list(hints.values())}


def cached_bytes(spec: CacheSpec, layout, frame: Sample) -> np.ndarray:
    """uint8 [H, W, 3] of one frame exactly as the loader's scale 0: crop, then LANCZOS."""
    from PIL import Image
    from datasets.layout import DatasetError
    from .images import load_rgb
    img = layout.crop_image(load_rgb(layout.image_path(frame.folder, frame.frame_index, frame.side),
                                     DatasetError))
    return np.asarray(img.resize((spec.width, spec.height), Image.LANCZOS), np.uint8)


def cached_hint(spec: CacheSpec, frame: Sample) -> np.ndarray:
    """float16 [H, W]: the sample's hint at the training size (nearest), as the loader resizes it."""
    import cv2
    from .hint_files import hint_file_path, load_hint
    hint = load_hint(hint_file_path(spec.hint_root, frame.folder, frame.frame_index, frame.side))
    return cv2.resize(hint, (spec.width, spec.height), interpolation=cv2.INTER_NEAREST).astype(np.float16)


def _create_array(path: str, shape: tuple, dtype) -> None:
    """An .npy of zeros at ``path`` unless one exists: made aside and linked in (a concurrent
    shard's array is never replaced)."""
    if os.path.exists(path):
        return
    tmp = f"{path}.tmp{os.getpid()}"
    np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape).flush()
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.remove(tmp)


def _read_index(cache_dir: str) -> dict | None:
    path = os.path.join(cache_dir, "index.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def disk_use(cache_dir: str) -> int:
    """Bytes the cache's files occupy on disk."""
    total = 0
    for name in os.listdir(cache_dir):
        st = os.stat(os.path.join(cache_dir, name))
        total += min(st.st_size, st.st_blocks * 512) if hasattr(st, "st_blocks") else st.st_size
    return total


def _rows(kind: str, index: dict, shard) -> list:
    return list(range(len(index[kind])))[shard.index::shard.count]


def build(spec: CacheSpec, cache_dir: str | None = None, shard=None, overwrite: bool = False,
          progress: bool = True) -> dict:
    """Write (or complete) the cache of ``spec``; returns {"dir", "frames", "hints", "written",
    "complete", "bytes"}. A cache of other options or stale sources is an error unless
    ``overwrite`` (then it is removed and rebuilt)."""
    from tqdm import tqdm
    from .precompute import Shard
    shard = shard or Shard()
    cache_dir = cache_dir or spec.default_dir()
    index = plan(spec)
    existing = _read_index(cache_dir)
    if existing is not None and existing != index:
        if not overwrite:
            raise CacheError(f"{cache_dir} holds a cache of other options or older sources "
                             f"({_difference(existing, index)}); rebuild it with: "
                             f"{spec.command(cache_dir, ' --overwrite')}")
        for name in ("index.json", "images.npy", "hints.npy", "images_done.npy", "hints_done.npy"):
            if os.path.exists(os.path.join(cache_dir, name)):
                os.remove(os.path.join(cache_dir, name))
        existing = None
    os.makedirs(cache_dir, exist_ok=True)
    n, m = len(index["frames"]), len(index["hints"])
    _create_array(os.path.join(cache_dir, "images.npy"), (n, spec.height, spec.width, 3), np.uint8)
    _create_array(os.path.join(cache_dir, "images_done.npy"), (n,), np.uint8)
    _create_array(os.path.join(cache_dir, "hints.npy"), (m, spec.height, spec.width), np.float16)
    _create_array(os.path.join(cache_dir, "hints_done.npy"), (m,), np.uint8)
    if existing is None:
        with atomic_write(os.path.join(cache_dir, "index.json"), "w") as f:
            json.dump(index, f)
    layout = spec.layout()
    written = 0
    for kind, array_name, make in (("frames", "images", lambda s: cached_bytes(spec, layout, s)),
                                   ("hints", "hints", lambda s: cached_hint(spec, s))):
        array = np.load(os.path.join(cache_dir, f"{array_name}.npy"), mmap_mode="r+")
        done = np.load(os.path.join(cache_dir, f"{array_name}_done.npy"), mmap_mode="r+")
        todo = [i for i in _rows(kind, index, shard) if not done[i]]
        pending = []
        for i in tqdm(todo, desc=f"cache {array_name}", unit=kind[:-1], disable=not progress or not todo,
                      dynamic_ncols=True):
            folder, frame_index, side = index[kind][i][:3]
            array[i] = make(Sample(folder, frame_index, side))
            pending.append(i)
            if len(pending) >= FLUSH_EVERY or i == todo[-1]:
                array.flush()  # the bytes first, then the marks
                done[pending] = 1
                done.flush()
                written += len(pending)
                pending = []
        del array, done
    complete = _complete(cache_dir)
    return {"dir": cache_dir, "frames": n, "hints": m, "written": written, "complete": complete,
            "bytes": disk_use(cache_dir)}


def _complete(cache_dir: str) -> bool:
    return all(np.load(os.path.join(cache_dir, f"{name}_done.npy")).all() for name in ("images", "hints"))


def _difference(existing: dict, index: dict) -> str:
    """Which part of two indexes differs, in a few words."""
    for field in ("version", "split", "height", "width", "dataset", "img_ext", "use_depth_hints",
                  "hint_root", "sceneflow_pass"):
        if existing.get(field) != index.get(field):
            return f"{field} {existing.get(field)!r}, now {index.get(field)!r}"
    if existing.get("split_digest") != index.get("split_digest"):
        return f"the split files of --split {index['split']} changed"
    for kind, what in (("frames", "image"), ("hints", "hint file")):
        old = {tuple(r[:3]): r[3:] for r in existing.get(kind, [])}
        for row in index[kind]:
            if old.get(tuple(row[:3])) != row[3:]:
                return f"{what} of '{row[0]} {row[1]} {row[2]}' changed or is new"
        if len(old) != len(index[kind]):
            return f"the set of {kind} changed"
    return "contents differ"


def verify(spec: CacheSpec, cache_dir: str | None = None, shard=None, progress: bool = True) -> dict:
    """Recompute every row of the shard and compare: {"checked", "bad": [keys], "missing": n}."""
    from tqdm import tqdm
    from .precompute import Shard
    shard = shard or Shard()
    cache_dir = cache_dir or spec.default_dir()
    index = _read_index(cache_dir)
    if index is None:
        raise CacheError(f"no training cache in {cache_dir}; build it with: {spec.command(cache_dir)}")
    current = plan(spec)
    if index != current:
        raise CacheError(f"the cache in {cache_dir} is stale ({_difference(index, current)}); "
                         f"rebuild it with: {spec.command(cache_dir, ' --overwrite')}")
    layout = spec.layout()
    bad, missing, checked = [], 0, 0
    for kind, array_name in (("frames", "images"), ("hints", "hints")):
        array = np.load(os.path.join(cache_dir, f"{array_name}.npy"), mmap_mode="r")
        done = np.load(os.path.join(cache_dir, f"{array_name}_done.npy"))
        for i in tqdm(_rows(kind, index, shard), desc=f"verify {array_name}", disable=not progress):
            frame = Sample(*index[kind][i][:3])
            if not done[i]:
                missing += 1
                continue
            expected = cached_bytes(spec, layout, frame) if kind == "frames" else cached_hint(spec, frame)
            checked += 1
            if not np.array_equal(array[i], expected):
                bad.append(f"{kind[:-1]} '{_key(frame)}'")
    return {"checked": checked, "bad": bad, "missing": missing}


class TrainingCache:
    """A complete, current cache opened for reading: ``image(sample)`` uint8 [H, W, 3] and
    ``hint(sample)`` float16 [H, W] are rows of memory maps (opened lazily, per process)."""

    def __init__(self, cache_dir: str, index: dict):
        self.dir = cache_dir
        self.height, self.width = index["height"], index["width"]
        self.frame_rows = {_key(Sample(*r[:3])): i for i, r in enumerate(index["frames"])}
        self.hint_rows = {_key(Sample(*r[:3])): i for i, r in enumerate(index["hints"])}
        self.command = index.get("_command", "python scripts/cache_training_data.py ...")
        self._images = self._hints = None

    def __getstate__(self):  # workers open their own maps
        return {**self.__dict__, "_images": None, "_hints": None}

    def _row(self, rows: dict, sample: Sample, what: str) -> int:
        row = rows.get(_key(sample))
        if row is None:
            raise CacheError(f"{what} '{_key(sample)}' is not in the training cache {self.dir}; "
                             f"rebuild it with: {self.command}")
        return row

    def image(self, sample: Sample) -> np.ndarray:
        if self._images is None:
            self._images = np.load(os.path.join(self.dir, "images.npy"), mmap_mode="r")
        return self._images[self._row(self.frame_rows, sample, "frame")]

    def hint(self, sample: Sample) -> np.ndarray:
        if self._hints is None:
            self._hints = np.load(os.path.join(self.dir, "hints.npy"), mmap_mode="r")
        return self._hints[self._row(self.hint_rows, sample, "hint of")]

    def has_hints(self) -> bool:
        return bool(self.hint_rows)


def open_cache(spec: CacheSpec, cache_dir: str | None = None, check_sources: bool = True) -> TrainingCache | None:
    """The cache for training with ``spec``: from ``cache_dir`` (an error when absent), else the
    conventional folder when it holds one (None when not). Refuses (CacheError, naming the
    rebuild command) a cache of other options, an incomplete one, and, with
    ``check_sources``, one whose split, images or hint files changed since it was written."""
    explicit = cache_dir is not None
    cache_dir = cache_dir or spec.default_dir()
    index = _read_index(cache_dir)
    if index is None:
        if explicit:
            raise CacheError(f"--cache_dir {cache_dir} holds no training cache; build it with: "
                             f"{spec.command(cache_dir)}")
        return None
    rebuild = spec.command(cache_dir, " --overwrite")
    identity = spec.identity()
    if not spec.use_depth_hints and index.get("use_depth_hints"):
        identity.update(use_depth_hints=True, hint_root=index.get("hint_root"))  # hints unused
    for field, value in identity.items():
        if index.get(field) != value:
            raise CacheError(f"the training cache {cache_dir} was made with {field} "
                             f"{index.get(field)!r}, this run needs {value!r}; rebuild it with: {rebuild}")
    if not _complete(cache_dir):
        raise CacheError(f"the training cache {cache_dir} is incomplete; finish it with: "
                         f"{spec.command(cache_dir)}")
    if check_sources:
        if index.get("split_digest") != split_digest(spec):
            raise CacheError(f"the split files of --split {spec.split} changed since the training "
                             f"cache {cache_dir} was made; rebuild it with: {rebuild}")
        layout = spec.layout()
        from .hint_files import hint_file_path
        for kind, where in (("frames", lambda r: layout.image_path(*r[:3])),
                            ("hints", lambda r: hint_file_path(index["hint_root"], *r[:3]))):
            for row in index[kind]:
                path = where(row)
                if not os.path.isfile(path) or _stat(path) != row[3:]:
                    raise CacheError(f"{path} changed since the training cache {cache_dir} was "
                                     f"made; rebuild it with: {rebuild}")
    index["_command"] = rebuild
    return TrainingCache(cache_dir, index)


def for_training(opt) -> TrainingCache | None:
    """The cache train.py reads for these options: --cache_dir, else the conventional folder
    when it holds one; None with --no_cache, without one, or for --frame_ids beyond -1..1 (not
    cached; an error with --cache_dir). Says which on rank 0."""
    if getattr(opt, "no_cache", False):
        return None
    cache_dir = getattr(opt, "cache_dir", None)
    offsets = {f for f in opt.frame_ids if f != "s"}
    if not offsets <= {0, *TEMPORAL_OFFSETS}:
        if cache_dir:
            raise CacheError(f"--frame_ids {' '.join(map(str, opt.frame_ids))}: the training cache holds "
                             f"the frames -1, 0, +1 and the other view only; drop --cache_dir.")
        return None
    opened = open_cache(CacheSpec.from_options(opt), cache_dir)
    if opened is not None and os.environ.get("RANK", "0") == "0":
        print(f"training cache: {opened.dir} (the loader copies rows; --no_cache decodes)")
    return opened
