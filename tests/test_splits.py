"""Split resolution and the pinned, checksummed KITTI split download (tested offline)."""
import io
import os
import urllib.error
from pathlib import Path

import pytest

from depth_hints import splits

SHARED = Path(__file__).resolve().parents[2] / "shared" / "kitti_splits"


def _opener_from(folder):
    def opener(url, timeout):
        rel = url.split("/splits/", 1)[1]
        return io.BytesIO((folder / rel).read_bytes())
    return opener


def _offline(url, timeout):
    raise urllib.error.URLError("no network")


def test_offline_download_fails_clearly(tmp_path):
    with pytest.raises(splits.SplitError, match="Could not download https://raw.githubusercontent.com/nianticlabs/.*no network"):
        splits.fetch_kitti_splits(tmp_path, opener=_offline)
    assert not any(tmp_path.rglob("*.txt"))


def test_checksum_mismatch_is_not_saved(tmp_path):
    def wrong(url, timeout):
        return io.BytesIO(b"not the file")
    with pytest.raises(splits.SplitError, match="sha256"):
        splits.fetch_kitti_splits(tmp_path, names=["eigen"], opener=wrong)
    assert not (tmp_path / "eigen" / "test_files.txt").exists()


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/kitti_splits not present")
def test_fetch_with_real_lists_and_parse_them(tmp_path):
    written = splits.fetch_kitti_splits(tmp_path, opener=_opener_from(SHARED))
    assert len(written) == len(splits.KITTI_SPLIT_FILES)
    test = splits.read_split_file(tmp_path / "eigen" / "test_files.txt")
    assert len(test) == 697 and test[0].side == "l"
    zhou = splits.read_split_file(tmp_path / "eigen_zhou" / "train_files.txt")
    assert len(zhou) == 39810
    # a second fetch keeps the files (checksums match) without touching the network
    assert len(splits.fetch_kitti_splits(tmp_path, opener=_offline)) == len(written)


def test_split_dir_accepts_names_and_folders(tmp_path, monkeypatch):
    assert splits.split_dir(str(tmp_path)) == tmp_path
    monkeypatch.setattr(splits, "PROJECT_SPLITS_DIR", tmp_path / "splits")
    (tmp_path / "splits" / "mine").mkdir(parents=True)
    assert splits.split_dir("mine") == tmp_path / "splits" / "mine"
    with pytest.raises(splits.SplitError, match="fetch_kitti_splits.py"):
        splits.split_dir("eigen_zhou")
