"""The released monodepth2 and Depth Hints models by name: the registry, and fetching them.

    folder = fetch_model("DH-HR-Resnet50")          # a weights folder: encoder.pth, depth.pth ...
    npy = fetch_predictions("DH-HR-Resnet50")       # its Eigen-split disparities [697, h, w]

Facts (public): URLs and md5 sums from monodepth2's code and README, URLs and numbers from the
Depth Hints README (which publishes no checksums). The numbers are the authors' KITTI Eigen-split
results (raw LiDAR ground truth, 80 m cap; stereo-trained models with --eval_stereo, mono ones
with median scaling), not re-measured here.

Cache: ``<torch hub dir>/depth_hints/`` (``$TORCH_HOME/hub``, see ``torch.hub.get_dir``):
``<name>/`` the unpacked weights folder plus ``released.json`` (what was checked),
``<name>.zip.sha256`` / ``<name>.disps_eigen_split.npy.sha256`` the sha256 recorded at the first
download where no md5 is published (later downloads must match it), ``<name>.lock``.
A download is streamed into a temporary folder beside the cache, checked (md5 or the recorded
sha256, length, the zip's files, a strict load into our networks) and renamed into place in one
step; concurrent processes take turns through the lock. Anything interrupted stays in a
``<name>.tmp*`` folder, never taken for a model and removed by the next download.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from depth_hints.atomic import atomic_write
from depth_hints.download import DEFAULT_TIMEOUT_S, download, file_lock
from depth_hints.errors import DepthHintsError

MANIFEST = "released.json"
PREDICTIONS_FILE = "disps_eigen_split.npy"
DEPTH_FILES = ("encoder.pth", "depth.pth")
POSE_FILES = ("pose_encoder.pth", "pose.pth")
MODALITIES = {"M": "Mono", "S": "Stereo", "MS": "Mono + Stereo"}


class ReleasedModelError(DepthHintsError):
    """An unknown released model, or one that could not be fetched or checked; the message
    names the model, the URL and how to place the files by hand."""


@dataclass(frozen=True)
class ReleasedModel:
    """One released model. ``modality``: M (mono), S (stereo) or MS; ``num_layers`` None: not
    published (read from encoder.pth); ``md5`` None: none published (sha256 recorded at the
    first download). ``abs_rel``, ``sq_rel``, ``a1``: the authors' Eigen-split numbers."""
    name: str
    project: str
    url: str
    modality: str
    height: int
    width: int
    imagenet: bool
    num_layers: int | None = None
    md5: str | None = None
    predictions_url: str | None = None
    abs_rel: float | None = None
    sq_rel: float | None = None
    a1: float | None = None

    @property
    def has_pose(self) -> bool:
        """Trained with temporal frames: the zip also holds pose_encoder.pth and pose.pth."""
        return "M" in self.modality

    @property
    def eval_flag(self) -> str:
        """How its numbers were measured: --eval_stereo for stereo-trained (x5.4), else
        --eval_mono (median scaling)."""
        return "--eval_stereo" if "S" in self.modality else "--eval_mono"

    @property
    def expected_files(self) -> tuple[str, ...]:
        return DEPTH_FILES + (POSE_FILES if self.has_pose else ())


_DH = "https://storage.googleapis.com/niantic-lon-static/research/depth-hints/"
_MD2 = "https://storage.googleapis.com/niantic-lon-static/research/monodepth2/"


def _depth_hints(name, folder, modality, num_layers, imagenet, width, height, abs_rel, sq_rel, a1):
    return ReleasedModel(name, "Depth Hints", f"{_DH}{folder}/models.zip", modality, height, width,
                         imagenet, num_layers, None, f"{_DH}{folder}/{PREDICTIONS_FILE}",
                         abs_rel, sq_rel, a1)


def _monodepth2(name, md5, modality, imagenet, abs_rel, a1, predictions=None):
    quoted = name.replace("+", "%2B")
    width, height = (int(v) for v in name.rsplit("_", 1)[1].split("x"))
    return ReleasedModel(name, "monodepth2", f"{_MD2}{quoted}.zip", modality, height, width,
                         imagenet, None, md5, f"{_MD2}{predictions}" if predictions else None,
                         abs_rel, None, a1)


#: name -> ReleasedModel. Depth Hints: README table (sq_rel of DH-HR-Resnet50 is 0.710 there).
#: monodepth2: README table (abs rel, delta < 1.25; no sq rel), md5 of its download code, and
#: the Eigen predictions its README links for the six ImageNet-pretrained models.
MODELS: dict[str, ReleasedModel] = {m.name: m for m in (
    _depth_hints("DH-Resnet50", "DH-Resnet50", "S", 50, True, 640, 192, 0.102, 0.762, 0.880),
    _depth_hints("DH-Resnet50-nopt", "DH-Resnet50-nopt", "S", 50, False, 640, 192, 0.118, 0.941, 0.850),
    _depth_hints("DH-HR-Resnet50", "DH-HR-Resnet50", "S", 50, True, 1024, 320, 0.096, 0.710, 0.890),
    _depth_hints("DH-HR-Resnet50-nopt", "DH-HR-Resnet50-nopt", "S", 50, False, 1024, 320, 0.112, 0.857, 0.861),
    _depth_hints("DH-HR-Mono+Stereo", "DH-HR-Mono%2BStereo", "MS", None, True, 1024, 320, 0.098, 0.702, 0.887),
    _monodepth2("mono_640x192", "a964b8356e08a02d009609d9e3928f7c", "M", True, 0.115, 0.877, "mono_640x192_eigen.npy"),
    _monodepth2("stereo_640x192", "3dfb76bcff0786e4ec07ac00f658dd07", "S", True, 0.109, 0.864, "stereo_640x192_eigen.npy"),
    _monodepth2("mono+stereo_640x192", "c024d69012485ed05d7eaa9617a96b81", "MS", True, 0.106, 0.874,
                "mono%2Bstereo_640x192_eigen.npy"),
    _monodepth2("mono_1024x320", "0ab0766efdfeea89a0d9ea8ba90e1e63", "M", True, 0.115, 0.879, "mono_1024x320_eigen.npy"),
    _monodepth2("stereo_1024x320", "afc2f2126d70cf3fdf26b550898b501a", "S", True, 0.107, 0.874, "stereo_1024x320_eigen.npy"),
    _monodepth2("mono+stereo_1024x320", "cdc5fc9b23513c07d5b19235d9ef08f7", "MS", True, 0.106, 0.876,
                "mono%2Bstereo_1024x320_eigen.npy"),
    _monodepth2("mono_no_pt_640x192", "9c2f071e35027c895a4728358ffc913a", "M", False, 0.132, 0.845),
    _monodepth2("stereo_no_pt_640x192", "41ec2de112905f85541ac33a854742d1", "S", False, 0.130, 0.831),
    _monodepth2("mono+stereo_no_pt_640x192", "46c3b824f541d143a45c37df65fbab0a", "MS", False, 0.127, 0.836),
)}


def get_model(name: str, flag: str = "--pretrained") -> ReleasedModel:
    """The registry entry of ``name``; an unknown name raises listing the known ones."""
    if name not in MODELS:
        raise ReleasedModelError(f"{flag} {name!r} is not a released model; one of "
                                 f"{', '.join(MODELS)} (`{flag} list` prints them).")
    return MODELS[name]


def table() -> str:
    """The registry as a text table (what ``--pretrained list`` prints)."""
    def number(value):
        return "-" if value is None else f"{value:.3f}"
    rows = [("name", "from", "trained", "ImageNet", "size", "layers", "abs_rel", "sq_rel", "a1",
             "predictions")]
    for m in MODELS.values():
        rows.append((m.name, m.project, MODALITIES[m.modality], "yes" if m.imagenet else "no",
                     f"{m.width}x{m.height}", str(m.num_layers or "?"), number(m.abs_rel),
                     number(m.sq_rel), number(m.a1), "yes" if m.predictions_url else "no"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines + [
        "Numbers: the authors' KITTI Eigen split (raw LiDAR, 80 m cap; stereo-trained models with "
        "--eval_stereo, mono with median scaling), not re-measured here. layers ?: not "
        "published, read from encoder.pth.",
        f"Cache: {cache_dir()}"])


# ----------------------------------------------------------------------------- the cache

def cache_dir() -> Path:
    """``<torch hub dir>/depth_hints`` (``$TORCH_HOME/hub/depth_hints`` by default)."""
    import torch.hub
    return Path(torch.hub.get_dir()) / "depth_hints"


def _manual_model(model: ReleasedModel) -> str:
    return (f"Or download {model.url} by hand, unzip it and pass its folder with "
            f"--load_weights_folder / --model_path.")


def _read_manifest(folder: Path) -> dict | None:
    """The manifest of a complete cached folder, else None (absent, or a file missing or of
    another size than when it was checked)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for name, size in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    return manifest


def cached_model(name: str) -> Path | None:
    """The cached weights folder of ``name`` when it is complete, else None (no network)."""
    folder = cache_dir() / get_model(name).name
    return folder if _read_manifest(folder) is not None else None


def cached_manifest(name: str) -> dict:
    """What was checked when ``name`` was cached (``released.json``: num_layers, height, width,
    files, zip_sha256); fetches it first if needed."""
    folder = Path(fetch_model(name, progress=False))
    manifest = _read_manifest(folder)
    if manifest is None:  # pragma: no cover - fetch_model returns complete folders only
        raise ReleasedModelError(f"{folder} is not a complete download; remove it and run again.")
    return manifest


def _recorded_sha256(record: Path) -> str | None:
    try:
        return record.read_text().split()[0]
    except (OSError, IndexError):
        return None


def _remove_stale(root: Path, name: str) -> None:
    """Temporary folders of interrupted downloads of ``name`` (only called under its lock)."""
    for path in root.glob(f"{name}.tmp*"):
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _expected_checksums(model_md5: str | None, record: Path) -> tuple[str | None, str | None]:
    """(md5, sha256) a download must match: the published md5, else the sha256 recorded at
    the first download (None the first time)."""
    return (model_md5, None) if model_md5 else (None, _recorded_sha256(record))


def _record(record: Path, sha256: str, url: str) -> None:
    if _recorded_sha256(record) is None:
        with atomic_write(record, "w") as f:
            f.write(f"{sha256}  {url}\n")


def _fetch(name: str, url: str, md5: str | None, target: Path, record: Path, manual: str,
           unpack, is_complete, progress: bool, timeout: float, opener) -> Path:
    """The shared path of models and predictions: under ``name``'s lock, download ``url`` into
    a temporary folder beside ``target``, check it (``unpack(download, tmp) -> the checked
    result in tmp``) and rename it to ``target``."""
    root = target.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReleasedModelError(f"Cannot create the model cache {root} ({e.strerror}); set "
                                 f"$TORCH_HOME to a writable folder.") from None
    with file_lock(root / f"{name}.lock") as locked:
        if is_complete(target):
            return target
        if locked:
            _remove_stale(root, name)
        if target.exists():
            raise ReleasedModelError(f"{target} exists but is not a complete download (no valid "
                                     f"{MANIFEST}); remove it and run again.")
        tmp = Path(tempfile.mkdtemp(prefix=f"{name}.tmp", dir=root))
        try:
            expected_md5, expected_sha256 = _expected_checksums(md5, record)
            downloaded = tmp / os.path.basename(url.split("?")[0])
            sha256 = download(url, downloaded, md5=expected_md5, sha256=expected_sha256,
                              manual=manual, error=ReleasedModelError, timeout=timeout,
                              progress=progress, desc=name, opener=opener)
            result = unpack(downloaded, tmp, sha256)
            if md5 is None:
                _record(record, sha256, url)
            try:
                os.rename(result, target)
            except OSError:
                if not is_complete(target):  # another process (no lock here) won the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# ----------------------------------------------------------------------------- models

def _pick_folder(names: list[str], model: ReleasedModel) -> str:
    """The folder inside the zip holding encoder.pth and depth.pth (the one of the highest
    ``weights_<n>`` where there are several)."""
    folders = {}
    for member in names:
        if member.startswith("__MACOSX/") or member.endswith("/"):
            continue
        folder, _, base = member.rpartition("/")
        folders.setdefault(folder, set()).add(base)
    candidates = [f for f, files in folders.items() if set(DEPTH_FILES) <= files]
    if not candidates:
        raise ReleasedModelError(f"{model.url}: the zip holds no folder with "
                                 f"{' and '.join(DEPTH_FILES)}; not a weights archive.")

    def order(folder):
        last = folder.rpartition("/")[2]
        number = last[len("weights_"):] if last.startswith("weights_") else ""
        return (int(number) if number.isdigit() else -1, folder)
    return max(candidates, key=order)


def check_weights_folder(folder: str | os.PathLike, model: ReleasedModel) -> dict:
    """Load every network file of ``folder`` strictly into our networks (depth; pose for
    models with a pose network) -> {"num_layers", "height", "width"}; raises naming the file."""
    from depth_hints.checkpoints import load_depth_model, load_pose_networks

    folder = os.fspath(folder)
    try:
        _, _, info = load_depth_model(folder)
        if model.has_pose:
            load_pose_networks(folder)
    except DepthHintsError as e:
        raise ReleasedModelError(f"{model.url}: {e}") from None
    except (RuntimeError, KeyError, ValueError) as e:  # load_state_dict(strict=True) mismatches
        message = " ".join(str(e).split())[:300]
        raise ReleasedModelError(f"{model.url}: the weights do not load into our networks "
                                 f"({type(e).__name__}: {message}).") from None
    if model.num_layers is not None and info.num_layers != model.num_layers:
        raise ReleasedModelError(f"{model.url}: encoder.pth is a ResNet{info.num_layers}, the "
                                 f"registry says ResNet{model.num_layers}.")
    return {"num_layers": info.num_layers, "height": info.height, "width": info.width}


def _unpack_model(model: ReleasedModel):
    def unpack(zip_path: Path, tmp: Path, sha256: str) -> Path:
        out = tmp / "model"
        out.mkdir()
        try:
            with zipfile.ZipFile(zip_path) as archive:
                inside = _pick_folder(archive.namelist(), model)
                prefix = f"{inside}/" if inside else ""
                wanted = [n for n in archive.namelist() if n.startswith(prefix) and "/" not in n[len(prefix):]
                          and (n.endswith(".pth") or n[len(prefix):] == "opt.json")]
                missing = [f for f in model.expected_files if prefix + f not in wanted]
                if missing:
                    raise ReleasedModelError(f"{model.url}: the zip lacks {', '.join(missing)} "
                                             f"(a {MODALITIES[model.modality].lower()} model holds "
                                             f"{', '.join(model.expected_files)}).")
                for member in wanted:
                    with archive.open(member) as src, open(out / member[len(prefix):], "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as e:
            raise ReleasedModelError(f"{model.url} is not a readable zip ({type(e).__name__}: "
                                     f"{e}); nothing was cached. Try again.") from None
        checked = check_weights_folder(out, model)
        manifest = {"name": model.name, "url": model.url, "zip_sha256": sha256, **checked,
                    "files": {p.name: p.stat().st_size for p in sorted(out.iterdir())}}
        with atomic_write(out / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        return out
    return unpack


def fetch_model(name: str, progress: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
                opener=urllib.request.urlopen) -> str:
    """The weights folder of released model ``name``, downloaded into the cache on first use
    (see the module docstring); raises ReleasedModelError naming the URL when it cannot."""
    model = get_model(name)
    root = cache_dir()
    target = root / model.name
    if _read_manifest(target) is not None:
        return str(target)
    print(f"-> Downloading released model {model.name} from {model.url} into {root}",
          file=sys.stderr, flush=True)
    _fetch(model.name, model.url, model.md5, target, root / f"{model.name}.zip.sha256",
           _manual_model(model), _unpack_model(model),
           lambda t: _read_manifest(t) is not None, progress, timeout, opener)
    return str(target)


# ----------------------------------------------------------------------------- predictions

def _unpack_predictions(model: ReleasedModel):
    def unpack(npy: Path, tmp: Path, sha256: str) -> Path:
        import numpy as np
        try:
            disps = np.load(npy, mmap_mode="r", allow_pickle=False)
            shape = disps.shape
        except (ValueError, OSError, EOFError) as e:
            raise ReleasedModelError(f"{model.predictions_url} is not a readable .npy "
                                     f"({type(e).__name__}: {e}); nothing was cached.") from None
        finally:
            disps = None
        if len(shape) not in (3, 4):
            raise ReleasedModelError(f"{model.predictions_url}: shape {shape}; expected [N,h,w] "
                                     f"disparities. Nothing was cached.")
        return npy
    return unpack


def fetch_predictions(name: str, progress: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
                      opener=urllib.request.urlopen) -> str:
    """The released Eigen-split disparities of ``name`` (``--ext_disp_to_eval NAME``), an
    ``.npy`` downloaded into the cache on first use."""
    model = get_model(name, "--ext_disp_to_eval")
    if model.predictions_url is None:
        with_predictions = [m.name for m in MODELS.values() if m.predictions_url]
        raise ReleasedModelError(f"--ext_disp_to_eval {name}: no predictions were released for "
                                 f"it; evaluate the weights with --pretrained {name}, or one of "
                                 f"{', '.join(with_predictions)}.")
    root = cache_dir()
    target = root / f"{model.name}.{PREDICTIONS_FILE}"
    if target.is_file():
        return str(target)
    print(f"-> Downloading the released predictions of {model.name} from {model.predictions_url} "
          f"into {root}", file=sys.stderr, flush=True)
    manual = (f"Or download {model.predictions_url} by hand and pass the file with "
              f"--ext_disp_to_eval <path>.")
    _fetch(model.name, model.predictions_url, None, target,
           root / f"{model.name}.{PREDICTIONS_FILE}.sha256", manual, _unpack_predictions(model),
           lambda t: t.is_file(), progress, timeout, opener)
    return str(target)


def main(argv=None) -> int:
    """``depth-hints-models``: print the table; ``depth-hints-models NAME ...`` also fetches
    those models (e.g. on a machine with network before a job on one without) and prints
    their folders."""
    from depth_hints.errors import run_entry_point

    names = list(sys.argv[1:] if argv is None else argv)

    def run() -> int:
        if not names or names in (["list"], ["-h"], ["--help"]):
            print(table())
            return 0
        for name in names:
            get_model(name)
        for name in names:
            print(f"{name}: {fetch_model(name)}")
        return 0
    return run_entry_point(run, "depth-hints-models")


if __name__ == "__main__":
    sys.exit(main())
