"""Split lists: where they live, how they are read, and how the KITTI ones are fetched.

A split file holds one sample per line: ``<folder> <frame_index> <side>`` with side l or r
(e.g. ``2011_09_26/2011_09_26_drive_0002_sync 69 l``). KITTI's lists are third-party data: they
are downloaded from a pinned public commit and checked against sha256 sums, never committed.
"""
from __future__ import annotations

from depth_hints.download import download, sha256_of
from depth_hints.errors import DepthHintsError
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROJECT_SPLITS_DIR = Path(__file__).resolve().parent.parent / "splits"

_MONODEPTH2 = "https://raw.githubusercontent.com/nianticlabs/monodepth2/b676244e5a1ca55564eb5d16ab521a48f823af31/splits/"
_DEPTH_HINTS = "https://raw.githubusercontent.com/nianticlabs/depth-hints/aa2ecf7bc88ef2edbd434fbf064ac024cec8e85d/splits/"

# relative path -> (url, sha256)
KITTI_SPLIT_FILES = {
    "benchmark/eigen_to_benchmark_ids.npy": (_MONODEPTH2, "1c1ac4ea84c938622f228a4438661fdb66ec07a2380a54bd21cd28b6eeb1a4e8"),
    "benchmark/test_files.txt": (_MONODEPTH2, "b9b0746d2e5263d975fd082d6e82d592971adc9e6a2fdf370a8cf78519161d28"),
    "benchmark/train_files.txt": (_MONODEPTH2, "060fdce26c5cd0681b6cc7620a856c697caa78fd23ab7a9ba41fb39c70ae3860"),
    "benchmark/val_files.txt": (_MONODEPTH2, "5c65577de234037bec0c792d7bf44c60b7fb367449266054eb4612a5e92bfa08"),
    "eigen/test_files.txt": (_MONODEPTH2, "e226d4ca16e0e6e9695435014347dcf973588531330536fd8a68d298ef091a6b"),
    "eigen_benchmark/test_files.txt": (_MONODEPTH2, "d56e5e509e6960a01fb93795f85028ac6e4a82ad40e64b6e968988e4db95b9be"),
    "eigen_full/all_files.txt": (_DEPTH_HINTS, "a840b8c1da2949fa280026f412735c04da98393d21b5a73c8dd305009e087522"),
    "eigen_full/train_files.txt": (_MONODEPTH2, "1b491141d87b7af9e6706609b7ce858c198c3a4ca61d180c7dc90815d5f2a986"),
    "eigen_full/val_files.txt": (_MONODEPTH2, "9c4446772ec58aaa60acbeef0fa6d1e8ef1b346ad4f78272d056d10cf1993af9"),
    "eigen_zhou/train_files.txt": (_MONODEPTH2, "00173a231642151c4693274e701ddd4cae7916520a757c7a94eae8e1173f7b0c"),
    "eigen_zhou/val_files.txt": (_MONODEPTH2, "64a868b8d2c66c3979a2d74c22ea2e9146850d5b9f5786ed8e5f92201ba1ad04"),
    "odom/test_files_09.txt": (_MONODEPTH2, "8b999b6f974041663ba2f8aa6456ea338089a272119b7edd702f352278f43d26"),
    "odom/test_files_10.txt": (_MONODEPTH2, "f39c47e0c21f65d4503476375f2a786def34f54bd5d1cabf28c7e68f002986a1"),
    "odom/train_files.txt": (_MONODEPTH2, "ced6c5fd1b0b76e2a28d68e046421c1f0df08de8fb713ca305684d263af6d0e2"),
    "odom/val_files.txt": (_MONODEPTH2, "9cf46e1b873d6f9883015b1f77fcace51db424a1f0a765324957f46399b6db99"),
}
KITTI_SPLIT_NAMES = sorted({p.split("/")[0] for p in KITTI_SPLIT_FILES})
FETCH_HINT = "python scripts/fetch_kitti_splits.py"


class SplitError(DepthHintsError, ValueError):
    """A missing or malformed split file; the message names the file and the fix."""


@dataclass(frozen=True)
class Sample:
    """One line of a split file. ``frame_index`` is an int, or the file name (a str) where
    the line names a frame that is not an integer (``--dataset stereo``); the layout checks it."""
    folder: str
    frame_index: int
    side: str  # 'l' or 'r'


def frame_token(token: str):
    """A split line's frame field -> int when it is a plain integer, else the name itself."""
    try:
        return int(token)
    except ValueError:
        return token


def split_dir(split: str) -> Path:
    """A split name under the project's splits/ folder, or a folder path -> the folder."""
    candidate = Path(split).expanduser()
    if candidate.is_dir():
        return candidate
    named = PROJECT_SPLITS_DIR / split
    if named.is_dir():
        return named
    hint = f" Fetch the KITTI lists with `{FETCH_HINT}`." if split in KITTI_SPLIT_NAMES else ""
    raise SplitError(f"Split {split!r}: no folder {named} and no directory {candidate}.{hint}")


def split_file(split: str, name: str) -> Path:
    """Path of ``name`` (e.g. train_files.txt) inside a split; raises if it does not exist."""
    path = split_dir(split) / name
    if not path.is_file():
        raise SplitError(f"Split file {path} does not exist.")
    return path


def numbered_fields(path: str | os.PathLike):
    """(line number from 1, line, its whitespace-split fields) for every non-blank line of a
    list file: what split readers need to name a malformed line."""
    with open(path) as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if parts:
                yield number, line, parts


def read_split_file(path: str | os.PathLike, require_side: bool = True,
                    named_frames: bool = False) -> list[Sample]:
    """Parse a split file -> samples. A malformed line raises naming the file and line number.
    ``named_frames``: a frame field that is not an integer is a file name (``--dataset
    stereo``), otherwise it is malformed."""
    path = Path(path)
    if not path.is_file():
        hint = f" Fetch the KITTI lists with `{FETCH_HINT}`." if path.parent.name in KITTI_SPLIT_NAMES else ""
        raise SplitError(f"Split file {path} does not exist.{hint}")
    samples = []
    for number, line, parts in numbered_fields(path):
        ok = len(parts) == 3 or (not require_side and len(parts) == 2)
        if ok:
            frame = frame_token(parts[1])
            ok = named_frames or isinstance(frame, int)
        if ok and len(parts) == 3 and parts[2] not in ("l", "r"):
            ok = False
        if not ok:
            raise SplitError(f"{path}:{number}: malformed line {line.strip()!r}; expected "
                             f"'<folder> <frame_index> <l|r>', e.g. "
                             f"'2011_09_26/2011_09_26_drive_0002_sync 69 l' (or "
                             f"'<sequence> <name> <l|r>' for --dataset stereo).")
        samples.append(Sample(parts[0], frame, parts[2] if len(parts) == 3 else "l"))
    if not samples:
        raise SplitError(f"Split file {path} lists no samples.")
    return samples


def fetch_split_files(files: dict, out_dir: str | os.PathLike = PROJECT_SPLITS_DIR, names=None,
                      timeout: float = 20.0, opener=urllib.request.urlopen) -> list[Path]:
    """Download third-party split lists ``files`` ({relative path: (base url, sha256)}) into
    ``out_dir``; ``names``: only these split folders.

    Existing files with the right checksum are kept. Each file is written atomically.
    Raises SplitError with the URL and the reason when offline or on a checksum mismatch."""
    out_dir = Path(out_dir)
    written = []
    for rel, (base, sha) in files.items():
        if names and rel.split("/")[0] not in names:
            continue
        target = out_dir / rel
        if target.is_file() and sha256_of(target) == sha:
            written.append(target)
            continue
        download(base + rel, target, sha256=sha, error=SplitError, timeout=timeout, opener=opener,
                 manual=f"Check the network, or copy the split lists into {out_dir} by hand.")
        written.append(target)
    return written


def fetch_kitti_splits(out_dir: str | os.PathLike = PROJECT_SPLITS_DIR, names=None,
                       timeout: float = 20.0, opener=urllib.request.urlopen) -> list[Path]:
    """Download the KITTI split lists (pinned commit, sha256-checked) into ``out_dir``
    (``fetch_split_files``)."""
    return fetch_split_files(KITTI_SPLIT_FILES, out_dir, names, timeout, opener)
