"""Tests for depth_hints.export (ONNX / TorchScript graphs and their metadata),
depth_hints.predictor (DepthPredictor) and their entry points (depth-hints-export,
test_simple.py --model_path FILE.onnx): parity with eager PyTorch, metric depth, and one-line
errors for every bad input."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import networks
import test_simple
from depth_hints import DepthPredictor
from depth_hints.checkpoints import save_weights_folder
from depth_hints.export import DepthGraph, ModelFileError, export_folder, main as export_main
from depth_hints.inference import InferenceError, to_input_tensor

FEED_H, FEED_W = 64, 192
PARITY = 1e-4  # max abs sigmoid-disparity difference allowed between a backend and eager

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _networks(seed: int = 0):
    """A random ResNet18 encoder + decoder whose disparities spread over (0, 1) on real
    images (the dispconv weights are scaled up), so parity is tested on a varied output."""
    torch.manual_seed(seed)
    encoder = networks.ResnetEncoder(18, False)
    decoder = networks.DepthDecoder(encoder.num_ch_enc)
    with torch.no_grad():
        for s in range(4):
            decoder._module("dispconv", s).conv.weight.mul_(40.0)
    return encoder.eval(), decoder.eval()


def _save(folder: Path, use_stereo: bool = True, options: dict | None = None) -> str:
    encoder, decoder = _networks()
    save_weights_folder(str(folder), {"encoder": encoder, "depth": decoder}, FEED_H, FEED_W, use_stereo,
                        options=options)
    return str(folder)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    return {"stereo": _save(root / "stereo", True, {"height": FEED_H, "width": FEED_W, "use_stereo": True,
                                                     "min_depth": 0.1, "max_depth": 100.0}),
            "mono": _save(root / "mono", False),
            "rig": _save(root / "rig", True, {"metric_scale_factor": 3.0, "min_depth": 0.5,
                                              "max_depth": 50.0})}


@pytest.fixture(scope="module")
def real_images():
    """Three real photographs of different sizes (scikit-image), HxWx3 uint8."""
    from skimage import data
    return [data.astronaut(), data.chelsea(), data.coffee()]


@pytest.fixture(scope="module")
def eager(folders):
    encoder, decoder = _networks()
    return DepthGraph(encoder, decoder).eval()


def _batch(images, height=FEED_H, width=FEED_W) -> np.ndarray:
    return torch.cat([to_input_tensor(Image.fromarray(im), width, height) for im in images]).numpy()


def _eager_disp(graph, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return graph(torch.from_numpy(batch)).numpy()


def _ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def _one_line_error(capsys, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    for name in names:
        assert name in err, err
    return err


# ----------------------------------------------------------------------------- parity

@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_graph_matches_eager_on_real_images(tmp_path, folders, eager, real_images, fmt):
    if fmt == "onnx":
        _ort()
    out = str(tmp_path / f"model.{'onnx' if fmt == 'onnx' else 'pt'}")
    export_folder(folders["stereo"], fmt, out)
    predictor = DepthPredictor.load(out)
    assert predictor.size == (FEED_H, FEED_W)
    for images in (real_images[:1], real_images):  # batch 1 and 3 from one file: dynamic batch
        batch = _batch(images)
        reference = _eager_disp(eager, batch)
        assert reference.std() > 0.05  # a varied output, not a constant
        got = predictor.predict_tensor(batch)
        assert got.shape == (len(images), 1, FEED_H, FEED_W)
        assert np.abs(got - reference).max() <= PARITY


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_dynamic_size_export_matches_at_two_sizes(tmp_path, folders, eager, real_images, fmt):
    if fmt == "onnx":
        _ort()
    out = str(tmp_path / "dynamic.model")
    _, metadata = export_folder(folders["stereo"], fmt, out, 96, 320, dynamic_size=True)
    assert metadata.dynamic_size and (metadata.height, metadata.width) == (96, 320)
    predictor = DepthPredictor.from_onnx(out) if fmt == "onnx" else DepthPredictor.from_torchscript(out)
    for height, width in ((96, 320), (128, 224)):
        batch = _batch(real_images[:2], height, width)
        got = predictor.predict_tensor(batch)
        assert got.shape == (2, 1, height, width)
        assert np.abs(got - _eager_disp(eager, batch)).max() <= PARITY


def test_fixed_size_onnx_rejects_another_size(tmp_path, folders, real_images):
    ort = _ort()
    out = str(tmp_path / "fixed.onnx")
    export_folder(folders["stereo"], "onnx", out)
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    assert session.run(None, {"image": _batch(real_images)})[0].shape == (3, 1, FEED_H, FEED_W)
    with pytest.raises(Exception):
        session.run(None, {"image": _batch(real_images[:1], 96, 320)})


# ----------------------------------------------------------------------------- metadata and metric

def test_onnx_metadata_and_metric_output(tmp_path, folders, real_images):
    ort = _ort()
    import onnx

    out = str(tmp_path / "metric.onnx")
    assert export_main(["--load_weights_folder", folders["rig"], "--out", out, "--metric"]) == 0
    model = onnx.load(out)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert (meta["height"], meta["width"]) == (str(FEED_H), str(FEED_W))
    assert float(meta["metric_scale_factor"]) == 3.0  # from the rig's opt.json
    assert json.loads(meta["training_options"]) == {"metric_scale_factor": 3.0, "min_depth": 0.5,
                                                    "max_depth": 50.0}
    assert meta["use_stereo"] == "true" and meta["outputs"] == "disp,depth"
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["disp", "depth"]
    disp, depth = session.run(None, {"image": _batch(real_images)})
    scaled_disp = 1 / 50.0 + (1 / 0.5 - 1 / 50.0) * disp  # the rig's min/max depth
    np.testing.assert_allclose(depth * scaled_disp, 3.0, rtol=1e-5)


def test_released_style_folder_exports_with_defaults(tmp_path, real_images, eager, capsys):
    """encoder.pth with height/width/use_stereo, depth.pth, nothing else (the released layout)."""
    ort = _ort()
    encoder, decoder = _networks()
    folder = tmp_path / "mono_stereo_640x192"
    folder.mkdir()
    state = dict(encoder.state_dict(), height=FEED_H, width=FEED_W, use_stereo=True)
    torch.save(state, folder / "encoder.pth")
    torch.save(decoder.state_dict(), folder / "depth.pth")
    out = tmp_path / "released.onnx"
    assert export_main(["--load_weights_folder", str(folder), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    predictor = DepthPredictor.from_onnx(str(out))
    meta = predictor.metadata
    assert (meta.height, meta.width, meta.use_stereo) == (FEED_H, FEED_W, True)
    assert (meta.metric_scale_factor, meta.min_depth, meta.max_depth) == (5.4, 0.1, 100.0)
    assert meta.training_options == {} and meta.num_layers == 18
    assert ort.InferenceSession(str(out)).get_modelmeta().custom_metadata_map["width"] == str(FEED_W)
    batch = _batch(real_images)
    assert np.abs(predictor.predict_tensor(batch) - _eager_disp(eager, batch)).max() <= PARITY


def test_torchscript_carries_metadata(tmp_path, folders):
    out = str(tmp_path / "model.pt")
    export_folder(folders["rig"], "torchscript", out, 96, 320)
    predictor = DepthPredictor.from_torchscript(out)
    assert predictor.size == (96, 320) and predictor.metadata.metric_scale_factor == 3.0
    assert (predictor.metadata.min_depth, predictor.metadata.max_depth) == (0.5, 50.0)


# ----------------------------------------------------------------------------- predictor

def test_predictor_inputs_sizes_and_metric_depth(tmp_path, folders, eager, real_images):
    predictor = DepthPredictor.from_folder(folders["stereo"], backend="torch")
    astronaut, chelsea = real_images[0], real_images[1]
    one = predictor.predict(astronaut)
    # model-size output is the eager graph's on the LANCZOS-resized image, exactly
    np.testing.assert_array_equal(one.model_disp, _eager_disp(eager, _batch([astronaut]))[0, 0])
    # resized back bilinearly to the image's own size
    back = torch.nn.functional.interpolate(torch.from_numpy(one.model_disp)[None, None],
                                           size=astronaut.shape[:2], mode="bilinear", align_corners=False)
    np.testing.assert_allclose(one.disp, back[0, 0].numpy(), atol=1e-7)
    assert one.disp.shape == astronaut.shape[:2]
    scaled = 1 / 100.0 + (1 / 0.1 - 1 / 100.0) * one.disp
    np.testing.assert_allclose(one.depth * scaled, 5.4, rtol=1e-5)  # 5.4 x nominal depth

    Image.fromarray(chelsea).save(tmp_path / "chelsea.png")
    pil, path, from_array = (predictor.predict(Image.fromarray(chelsea)),
                             predictor.predict(tmp_path / "chelsea.png"), predictor.predict(chelsea))
    np.testing.assert_array_equal(pil.disp, from_array.disp)
    np.testing.assert_array_equal(path.disp, from_array.disp)

    batch = predictor.predict([astronaut, chelsea])  # different sizes in one batch
    assert [r.disp.shape for r in batch] == [astronaut.shape[:2], chelsea.shape[:2]]
    np.testing.assert_allclose(batch[1].disp, from_array.disp, atol=1e-6)
    stacked = predictor.predict(np.stack([chelsea, chelsea]))  # a BxHxWx3 array is a batch
    assert len(stacked) == 2 and np.array_equal(stacked[0].disp, stacked[1].disp)

    mono = DepthPredictor.from_folder(folders["mono"], backend="torch").predict(chelsea)
    assert mono.depth is None  # no metric depth without stereo training


def test_predictor_default_backend_and_backends_agree(folders, real_images):
    _ort()
    auto = DepthPredictor.from_folder(folders["stereo"])
    assert auto.backend == "onnxruntime"  # the fastest on CPU (scripts/benchmark_inference.py)
    reference = DepthPredictor.from_folder(folders["stereo"], backend="torch").predict(real_images)
    for backend in ("onnxruntime", "torchscript"):
        got = DepthPredictor.from_folder(folders["stereo"], backend=backend).predict(real_images)
        for a, b in zip(got, reference):
            assert np.abs(a.disp - b.disp).max() <= PARITY


def test_import_is_light_and_predictor_is_exported():
    code = ("import sys, depth_hints.errors; assert 'torch' not in sys.modules; "
            "from depth_hints import DepthPredictor; print(DepthPredictor.__module__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "depth_hints.predictor"


# ----------------------------------------------------------------------------- test_simple with ONNX

def test_test_simple_with_an_onnx_model_matches_the_folder(tmp_path, folders, real_images):
    _ort()
    image = tmp_path / "astronaut.jpg"
    Image.fromarray(real_images[0]).save(image)
    model = tmp_path / "model.onnx"
    export_folder(folders["stereo"], "onnx", str(model))
    for source, out in ((folders["stereo"], "from_folder"), (str(model), "from_onnx")):
        assert test_simple.main(["--image_path", str(image), "--model_path", source,
                                 "--output_dir", str(tmp_path / out), "--pred_metric_depth"]) == 0
    a, b = (np.load(tmp_path / d / "astronaut_depth.npy") for d in ("from_folder", "from_onnx"))
    assert a.shape == (1, 1, FEED_H, FEED_W)
    np.testing.assert_allclose(a, b, rtol=1e-3)


# ----------------------------------------------------------------------------- bad input

def test_export_bad_inputs_are_one_line_errors(tmp_path, folders, capsys):
    out = str(tmp_path / "m.onnx")
    assert export_main(["--load_weights_folder", str(tmp_path / "nowhere"), "--out", out]) == 2
    _one_line_error(capsys, "nowhere")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "encoder.pth").write_bytes((Path(folders["mono"]) / "encoder.pth").read_bytes())
    assert export_main(["--load_weights_folder", str(partial), "--out", out]) == 2
    _one_line_error(capsys, "depth.pth")  # the missing weights file, by name
    assert export_main(["--load_weights_folder", folders["mono"], "--out", out, "--height", "100"]) == 2
    _one_line_error(capsys, "--height 100", "32")
    assert export_main(["--load_weights_folder", folders["mono"], "--out", str(tmp_path / "no" / "m.onnx"),
                        "--format", "torchscript"]) == 2
    _one_line_error(capsys, "--out", str(tmp_path / "no"))
    assert not Path(out).exists()


def test_model_files_without_our_metadata_are_named(tmp_path, folders, capsys):
    _ort()
    plain = tmp_path / "plain.onnx"
    encoder, decoder = _networks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation notices
        torch.onnx.export(DepthGraph(encoder, decoder).eval(), (torch.rand(1, 3, FEED_H, FEED_W),),
                          str(plain), opset_version=17, dynamo=False, input_names=["image"])
        ts = tmp_path / "plain.pt"
        torch.jit.save(torch.jit.trace(DepthGraph(encoder, decoder).eval(), torch.rand(1, 3, FEED_H, FEED_W)), ts)
    with pytest.raises(ModelFileError, match="plain.onnx.*no depth-hints metadata"):
        DepthPredictor.from_onnx(str(plain))
    image = tmp_path / "a.png"
    Image.new("RGB", (40, 30)).save(image)
    assert test_simple.main(["--image_path", str(image), "--model_path", str(plain)]) == 2
    _one_line_error(capsys, "plain.onnx", "depth-hints-export")

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    assert test_simple.main(["--image_path", str(image), "--model_path", str(garbage)]) == 2
    _one_line_error(capsys, "garbage.onnx")
    assert test_simple.main(["--image_path", str(image), "--model_path", str(tmp_path / "gone.onnx")]) == 2
    _one_line_error(capsys, "gone.onnx")
    with pytest.raises(ModelFileError, match="plain.pt.*no depth-hints metadata"):
        DepthPredictor.from_torchscript(str(ts))


def test_predictor_bad_images_are_named(tmp_path, folders):
    predictor = DepthPredictor.from_folder(folders["mono"], backend="torch")
    with pytest.raises(InferenceError, match="nope.jpg does not exist"):
        predictor.predict(str(tmp_path / "nope.jpg"))
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")
    with pytest.raises(InferenceError, match="notes.jpg could not be read"):
        predictor.predict(fake)
    with pytest.raises(InferenceError, match="uint8"):
        predictor.predict(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InferenceError, match="HxWx3"):
        predictor.predict(np.zeros((8, 8), np.uint8))
