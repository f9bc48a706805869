"""Middlebury 2014 (--dataset middlebury) on a real pair: scikit-image's Motorcycle (Middlebury
2014, downscaled 4x, with its left-view disparity) written into the layout; calib.txt
parsing, depth from disparity with doffs, hints and their accuracy on real stereo."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from datasets.layout import CalibrationError
from datasets.middlebury import MiddleburyLayout, read_calib_txt
from datasets.registry import make_layout
from depth_hints.hint_files import hint_depth_to_disparity, hint_file_path, load_hint
from depth_hints.options import parse_precompute
from depth_hints.pfm import write_pfm
from depth_hints.precompute import precompute

# the downscaled calibration from skimage.data.stereo_motorcycle's docstring
FOCAL, CX, CY, DOFFS, BASELINE_MM = 994.978, 311.193, 254.877, 31.086, 193.001
WIDTH, HEIGHT = 741, 500
SCENE = "Motorcycle"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def calib_text(**changes) -> str:
    values = {"cam0": f"[{FOCAL} 0 {CX}; 0 {FOCAL} {CY}; 0 0 1]",
              "cam1": f"[{FOCAL} 0 {CX + DOFFS:.3f}; 0 {FOCAL} {CY}; 0 0 1]",
              "doffs": DOFFS, "baseline": BASELINE_MM, "width": WIDTH, "height": HEIGHT,
              "ndisp": 70, **changes}
    return "".join(f"{k}={v}\n" for k, v in values.items() if v is not None)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from skimage import data
    left, right, disparity = data.stereo_motorcycle()
    root = tmp_path_factory.mktemp("middlebury")
    folder = root / SCENE
    folder.mkdir()
    Image.fromarray(left).save(folder / "im0.png")
    Image.fromarray(right).save(folder / "im1.png")
    (folder / "calib.txt").write_text(calib_text())
    write_pfm(folder / "disp0.pfm", disparity.astype(np.float32))  # inf = unknown
    return root, disparity


def test_calib_and_camera(scene):
    root, _ = scene
    calib = read_calib_txt(str(root / SCENE / "calib.txt"))
    assert calib["cam0"][0, 2] == CX and calib["cam1"][0, 2] == pytest.approx(CX + DOFFS)
    assert calib["ndisp"] == 70 and calib["baseline"] == BASELINE_MM
    camera = make_layout("middlebury", str(root)).camera(SCENE)
    assert camera.intrinsics == pytest.approx((FOCAL / WIDTH, FOCAL / HEIGHT, CX / WIDTH, CY / HEIGHT))
    assert camera.baseline == pytest.approx(0.193001) and camera.doffs == pytest.approx(DOFFS / WIDTH)
    assert camera.metric_scale == pytest.approx(1.93001)


def test_depth_from_disparity_with_doffs_follows_the_formula(scene):
    root, disparity = scene
    layout = MiddleburyLayout(str(root))
    depth = layout.gt_depth(SCENE, 0, "l")
    valid = np.isfinite(disparity)
    expected = BASELINE_MM / 1000.0 * FOCAL / (disparity[valid].astype(np.float64) + DOFFS)
    np.testing.assert_allclose(depth[valid], expected, rtol=1e-5)
    assert (depth[~valid] == 0).all()
    # e.g. a disparity of 60 px: 0.193001 m x 994.978 px / 91.086 px = 2.1083 m (without doffs: 3.2)
    assert layout.camera(SCENE).disparity_to_depth(np.float64(60.0), WIDTH) == pytest.approx(2.10826, rel=1e-5)
    assert layout.read_gt(SCENE, 0, "r") is None  # no disp1.pfm written: no right-view truth


def test_hints_on_the_real_pair(scene, tmp_path, capsys):
    """Fused-SGM hints at full resolution against Middlebury's ground truth (EPE, coverage)."""
    root, disparity = scene
    lines = tmp_path / "lines.txt"
    lines.write_text(f"{SCENE} 0 l\n")
    report_path = tmp_path / "report.json"
    options = parse_precompute(["--dataset", "middlebury", "--data_path", str(root), "--filenames",
                                str(lines), "--height", str(HEIGHT), "--width", str(WIDTH),
                                "--num_workers", "0", "--save_path", str(tmp_path / "hints"),
                                "--report", str(report_path)])
    summary = precompute(options, progress=False, verbose=False)
    assert summary.ok and summary.computed == 1
    report = json.loads(report_path.read_text())
    hint_scores = report["accuracy_mean"]["hint"]
    print(f"\nMiddlebury Motorcycle (741x500) hint: EPE {hint_scores['epe']:.3f} px, bad-1 "
          f"{hint_scores['bad1']:.3f}, bad-3 {hint_scores['bad3']:.3f}, coverage "
          f"{hint_scores['coverage']:.3f}; best single matcher EPE "
          f"{min(m['epe'] for m in report['accuracy_mean']['matchers'].values()):.3f}")
    # measured: EPE 1.18 px, bad-1 0.093, bad-3 0.057, coverage 0.818 of the ground-truth pixels
    assert hint_scores["epe"] < 1.6 and hint_scores["bad3"] < 0.1 and hint_scores["coverage"] > 0.75
    # the hint file is depth in nominal units with the rig's fx and doffs: x 1.93 = metres
    hint = load_hint(hint_file_path(str(tmp_path / "hints"), SCENE, 0, "l"))
    camera = MiddleburyLayout(str(root)).camera(SCENE)
    hint_disparity = hint_depth_to_disparity(hint, WIDTH, camera.fx_normalised, camera.doffs)
    gt_depth = MiddleburyLayout(str(root)).gt_depth(SCENE, 0, "l")
    both = (hint > 0) & (gt_depth > 0)
    np.testing.assert_allclose(hint[both] * camera.metric_scale,
                               camera.disparity_to_depth(hint_disparity[both].astype(np.float64), WIDTH),
                               rtol=1e-4)
    relative = np.abs(hint[both] * camera.metric_scale - gt_depth[both]) / gt_depth[both]
    assert np.median(relative) < 0.02


def test_bad_calib_txt_names_the_file_and_key(scene, tmp_path):
    root, _ = scene
    folder = tmp_path / SCENE
    folder.mkdir()
    (folder / "im0.png").write_bytes((root / SCENE / "im0.png").read_bytes())
    calib = folder / "calib.txt"

    def error(text):
        calib.write_text(text)
        with pytest.raises(CalibrationError) as info:
            MiddleburyLayout(str(tmp_path)).camera(SCENE)
        assert str(calib) in str(info.value) and "\n" not in str(info.value)
        return str(info.value)

    assert "no key 'doffs'" in error(calib_text(doffs=None))
    assert "cam0" in error(calib_text(cam0="[994 0 311; 0 994]"))
    assert "baseline = 'abc' is not a number" in error(calib_text(baseline="abc"))
    assert "width x height 700x500" in error(calib_text(width=700))
    calib.unlink()
    with pytest.raises(CalibrationError, match="does not exist"):
        MiddleburyLayout(str(tmp_path)).camera(SCENE)


# ----------------------------------------------------------------------------- --eval_stereo

def test_eval_stereo_scales_each_scene_by_its_own_camera(tmp_path):
    """Every scene has its own baseline, so a Middlebury training records no single factor
    (null): --eval_stereo uses each frame's camera (baseline / 0.1), as on Cityscapes."""
    from depth_hints import evaluation as ev
    from depth_hints.checkpoints import METRIC_SCALE_KEY
    from depth_hints.options import parse_evaluate
    width, height, focal, doffs = 64, 32, 50.0, 4.0
    scenes = {"SceneA": 120.0, "SceneB": 300.0}  # baselines in mm
    for scene, baseline_mm in scenes.items():
        folder = tmp_path / scene
        folder.mkdir()
        for name in ("im0.png", "im1.png"):
            Image.new("RGB", (width, height), (100, 100, 100)).save(folder / name)
        (folder / "calib.txt").write_text(calib_text(
            cam0=f"[{focal} 0 30; 0 {focal} 16; 0 0 1]", cam1=f"[{focal} 0 {30 + doffs}; 0 {focal} 16; 0 0 1]",
            doffs=doffs, baseline=baseline_mm, width=width, height=height))
        write_pfm(folder / "disp0.pfm", np.full((height, width), 6.0, np.float32))
    split = tmp_path / "split"
    split.mkdir()
    (split / "test_files.txt").write_text("".join(f"{scene} 0 l\n" for scene in scenes))
    # depth = baseline * f / (d + doffs); a perfect model predicts scaled disparity factor / depth
    depths = [b / 1000.0 * focal / (6.0 + doffs) for b in scenes.values()]
    factors = [b / 1000.0 / 0.1 for b in scenes.values()]
    np.save(tmp_path / "d.npy", np.stack([np.full((height, width), f / z, np.float32)
                                          for f, z in zip(factors, depths)]))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "opt.json").write_text(json.dumps({METRIC_SCALE_KEY: None, "use_stereo": True}))
    base = ["--dataset", "middlebury", "--data_path", str(tmp_path), "--eval_split", str(split),
            "--ext_disp_to_eval", str(tmp_path / "d.npy"), "--eval_stereo"]
    for extra in (["--load_weights_folder", str(weights)], []):  # mixed rigs (null) / none recorded
        result = ev.evaluate(parse_evaluate(base + extra))
        assert result["n"] == 2 and result["abs_rel"] == pytest.approx(0.0, abs=1e-5)
        assert result["scaling"] == "stereo (each frame's camera)"
        assert result["pred_depth_scale_factor"] == pytest.approx(np.mean(factors))
    # an explicit factor still overrides: depth = 2 / disparity
    explicit = ev.evaluate(parse_evaluate(base + ["--pred_depth_scale_factor", "2.0"]))
    expected = np.mean([abs(2.0 / np.float32(f / z) - z) / z for f, z in zip(factors, depths)])
    assert explicit["abs_rel"] == pytest.approx(expected, rel=1e-4)
