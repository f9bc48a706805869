"""Released models by name, offline: a local HTTP server on 127.0.0.1 serves a zip built here
from a tiny model (ResNet18, random init, 64x96), and the registry entry points at it."""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import multiprocessing
import os
import socket
import threading
import time
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import networks
from depth_hints import released_models as rm
from depth_hints.options import OptionsError, parse_evaluate, parse_export, parse_test_simple, parse_train
from depth_hints.predictor import DepthPredictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEIGHT, WIDTH = 64, 96
INSIDE = "tiny/models/weights_19/"  # released zips may nest the folder; the checker finds it


def _state_files(seed: int = 0, pose: bool = False) -> dict[str, bytes]:
    """The released folder format: encoder.pth (+ height, width, use_stereo), depth.pth
    [, pose_encoder.pth, pose.pth] -> {file name: bytes}."""
    torch.manual_seed(seed)
    encoder = networks.ResnetEncoder(18, False)
    decoder = networks.DepthDecoder(encoder.num_ch_enc, scales=range(4))
    states = {"encoder.pth": {**encoder.state_dict(), "height": HEIGHT, "width": WIDTH, "use_stereo": True},
              "depth.pth": decoder.state_dict()}
    if pose:
        pose_encoder = networks.ResnetEncoder(18, False, num_input_images=2)
        states["pose_encoder.pth"] = pose_encoder.state_dict()
        states["pose.pth"] = networks.PoseDecoder(pose_encoder.num_ch_enc, 1, 2).state_dict()
    out = {}
    for name, state in states.items():
        buffer = io.BytesIO()
        torch.save(state, buffer)
        out[name] = buffer.getvalue()
    return out


def _zip(files: dict[str, bytes], inside: str = INSIDE) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(inside + name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def release():
    """(the weights files, the zip's bytes) of the tiny stereo model."""
    files = _state_files()
    return files, _zip(files)


class Server:
    """A threaded HTTP server on 127.0.0.1 serving ``files`` {path: bytes}; counts requests.
    ``truncate``: announce more bytes than are sent, then close. ``barrier``: each request
    waits for that many requests to be in flight; ``delay``: seconds before answering."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.truncate = False
        self.barrier: threading.Barrier | None = None
        self.delay = 0.0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if server.barrier is not None:
                    server.barrier.wait(timeout=20)
                time.sleep(server.delay)
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data) + (1000 if server.truncate else 0)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2] if server.truncate else data)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def registry(monkeypatch, tmp_path, server, release):
    """TORCH_HOME in tmp_path; registry entry 'tiny' (stereo, no md5) served by ``server``.
    Returns a function (changes to the entry) -> the entry, registered."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    server.files["/tiny/models.zip"] = release[1]

    def register(**changes):
        entry = rm.ReleasedModel("tiny", "test", f"{server.url}/tiny/models.zip", "S", HEIGHT, WIDTH,
                                 False, 18, predictions_url=f"{server.url}/tiny/disps_eigen_split.npy")
        entry = replace(entry, **changes)
        monkeypatch.setitem(rm.MODELS, "tiny", entry)
        return entry
    register()
    return register


def _cache_entries() -> list[str]:
    root = rm.cache_dir()
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) if root.is_dir() else []


def test_download_unpacks_checks_and_caches(registry, server, release):
    files, data = release
    folder = rm.fetch_model("tiny")
    assert folder == str(rm.cache_dir() / "tiny") and str(rm.cache_dir()).startswith(os.environ["TORCH_HOME"])
    assert sorted(os.listdir(folder)) == ["depth.pth", "encoder.pth", rm.MANIFEST]
    for name, blob in files.items():  # flattened out of the zip's nested folder, byte for byte
        assert open(os.path.join(folder, name), "rb").read() == blob
    manifest = json.load(open(os.path.join(folder, rm.MANIFEST)))
    assert manifest["num_layers"] == 18 and (manifest["height"], manifest["width"]) == (HEIGHT, WIDTH)
    # no md5 published: the zip's sha256 is recorded beside the cache
    record = rm.cache_dir() / "tiny.zip.sha256"
    assert record.read_text().split()[0] == hashlib.sha256(data).hexdigest()
    assert server.requests == ["/tiny/models.zip"]
    assert _cache_entries() == ["tiny", "tiny.zip.sha256"]  # no zip, no temporary folder left

    # a cache hit makes no request
    assert rm.fetch_model("tiny") == folder and rm.cached_model("tiny") is not None
    assert len(server.requests) == 1


def test_an_interrupted_download_is_never_taken_for_a_model(registry, server, release):
    """A killed process leaves its temporary folder (a complete-looking weights folder inside):
    it is not a cache entry, and the next download removes it."""
    stale = rm.cache_dir() / "tiny.tmp0ld" / "model"
    _write_folder(str(stale), release[0])
    assert rm.cached_model("tiny") is None
    assert rm.fetch_model("tiny", progress=False) == str(rm.cache_dir() / "tiny")
    assert len(server.requests) == 1 and _cache_entries() == ["tiny", "tiny.zip.sha256"]


def test_published_md5_is_checked(registry, server, release):
    registry(md5="0" * 32)
    with pytest.raises(rm.ReleasedModelError, match=f"{server.url}/tiny/models.zip: md5 .* != expected 0{{32}}"):
        rm.fetch_model("tiny")
    assert _cache_entries() == []  # nothing cached, nothing recorded
    registry(md5=hashlib.md5(release[1]).hexdigest())
    assert os.path.isfile(os.path.join(rm.fetch_model("tiny"), "encoder.pth"))
    assert _cache_entries() == ["tiny"]  # an md5 is published: no sha256 record


def test_cut_download_leaves_nothing(registry, server):
    server.truncate = True
    with pytest.raises(rm.ReleasedModelError, match="ended after .* bytes"):
        rm.fetch_model("tiny")
    assert _cache_entries() == [] and rm.cached_model("tiny") is None
    server.truncate = False  # the next try starts clean and succeeds
    assert os.path.isdir(rm.fetch_model("tiny"))


def test_recorded_sha256_is_checked_from_then_on(registry, server, release):
    import shutil
    folder = rm.fetch_model("tiny")
    shutil.rmtree(folder)
    server.files["/tiny/models.zip"] = _zip(release[0], inside="")  # another file at the same URL
    with pytest.raises(rm.ReleasedModelError, match="sha256 .* != expected"):
        rm.fetch_model("tiny")
    assert _cache_entries() == ["tiny.zip.sha256"]


@pytest.mark.parametrize("case, message", [
    ("not a zip", "not a readable zip"),
    ("no weights", "no folder with encoder.pth and depth.pth"),
    ("extra tensor", "do not load into our networks"),
    ("mono without pose", "lacks pose_encoder.pth, pose.pth"),
    ("wrong depth", "ResNet18, the registry says ResNet50"),
])
def test_bad_archives_are_refused_and_not_cached(registry, server, release, case, message):
    files = release[0]
    if case == "not a zip":
        data = b"<html>not found</html>"
    elif case == "no weights":
        data = _zip({"readme.txt": b"hello"})
    elif case == "extra tensor":
        state = torch.load(io.BytesIO(files["depth.pth"]), weights_only=True)
        buffer = io.BytesIO()
        torch.save({**state, "extra.weight": torch.zeros(1)}, buffer)
        data = _zip({**files, "depth.pth": buffer.getvalue()})
    else:
        data = release[1]
        registry(**({"modality": "M"} if case == "mono without pose" else {"num_layers": 50}))
    server.files["/tiny/models.zip"] = data
    with pytest.raises(rm.ReleasedModelError, match=message):
        rm.fetch_model("tiny")
    assert _cache_entries() == []  # neither a folder nor a recorded checksum


def test_mono_model_brings_its_pose_network(registry, server):
    server.files["/tiny/models.zip"] = _zip(_state_files(pose=True), inside="")
    registry(modality="M")
    folder = rm.fetch_model("tiny", progress=False)
    assert {"pose_encoder.pth", "pose.pth"} <= set(os.listdir(folder))


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/tiny/models.zip"


def test_offline_is_one_line_naming_the_url_and_the_manual_way(registry, tmp_path, capsys):
    import test_simple
    url = _closed_port_url()
    registry(url=url)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(image)
    assert test_simple.main(["--image_path", str(image), "--pretrained", "tiny", "--no_cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("test_simple.py: error: Could not download " + url)
    assert "--load_weights_folder / --model_path" in err
    assert _cache_entries() == []


def _fetch_in_child(queue):
    try:
        queue.put(rm.fetch_model("tiny", progress=False))
    except Exception as e:  # reported to the parent
        queue.put(f"error: {e}")


def _two_processes_at_once() -> list:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_fetch_in_child, args=(queue,)) for _ in range(2)]
    for child in children:
        child.start()
    results = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    return results


def test_two_processes_downloading_at_once_share_one_download(registry, server):
    server.delay = 1.0  # both processes are surely running before the first download ends
    results = _two_processes_at_once()
    assert results == [str(rm.cache_dir() / "tiny")] * 2
    assert len(server.requests) == 1  # the second waited on the lock, then found the cache
    assert _cache_entries() == ["tiny", "tiny.zip.sha256"] and rm.cached_model("tiny") is not None


def test_two_processes_without_a_lock_both_end_with_one_valid_entry(registry, server, monkeypatch):
    """Where there is no file lock (Windows), both download; one rename wins, the other
    process finds the complete folder and drops its own copy."""
    import contextlib
    monkeypatch.setattr(rm, "file_lock", lambda path: contextlib.nullcontext(False))
    server.barrier = threading.Barrier(2)  # both requests in flight at the same time
    results = _two_processes_at_once()
    assert results == [str(rm.cache_dir() / "tiny")] * 2
    assert len(server.requests) == 2
    assert _cache_entries() == ["tiny", "tiny.zip.sha256"] and rm.cached_model("tiny") is not None


def _write_folder(folder, files):
    os.makedirs(folder)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def test_test_simple_and_the_predictor_match_the_folder(registry, release, tmp_path, monkeypatch):
    import test_simple
    from depth_hints import predictor
    monkeypatch.setattr(predictor, "_has_onnxruntime", lambda: False)  # eager torch: fast here
    folder = str(tmp_path / "by_hand")
    _write_folder(folder, release[0])
    image = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 80, 3), dtype=np.uint8)).save(image)
    outputs = {}
    for how in (["--pretrained", "tiny"], ["--model_path", folder]):
        out = tmp_path / how[0].strip("-")
        assert test_simple.main(["--image_path", str(image), "--output_dir", str(out), "--no_cuda", *how]) == 0
        outputs[how[0]] = np.load(out / "img_disp.npy")
    assert outputs["--pretrained"].shape == (1, 1, HEIGHT, WIDTH)
    assert np.array_equal(outputs["--pretrained"], outputs["--model_path"])

    by_name = DepthPredictor.from_pretrained("tiny", backend="torch").predict(str(image))
    by_folder = DepthPredictor.from_folder(folder, backend="torch").predict(str(image))
    assert np.array_equal(by_name.disp, by_folder.disp) and by_name.disp.shape == (50, 80)


def test_the_entry_points_take_pretrained(registry, server):
    cached = str(rm.cache_dir() / "tiny")
    assert parse_export(["--pretrained", "tiny", "--out", "m.onnx"]).load_weights_folder == cached
    evaluate = parse_evaluate(["--pretrained", "tiny", "--eval_stereo"])
    assert evaluate.load_weights_folder == cached and evaluate.pretrained == "tiny"
    train = parse_train(["--pretrained", "tiny", "--use_stereo", "--frame_ids", "0"])
    assert train.load_weights_folder == cached
    with pytest.raises(OptionsError, match="is a ResNet18: add --num_layers 18"):
        parse_train(["--pretrained", "tiny", "--use_stereo", "--frame_ids", "0", "--num_layers", "50"])
    with pytest.raises(OptionsError, match="exclude each other"):
        parse_test_simple(["--image_path", "x", "--pretrained", "tiny", "--model_path", "w"])
    with pytest.raises(OptionsError, match="--model_path .* or --pretrained NAME"):
        parse_test_simple(["--image_path", "x"])
    with pytest.raises(rm.ReleasedModelError, match="'nope' is not a released model"):
        parse_export(["--pretrained", "nope", "--out", "m.onnx"])
    assert len(server.requests) == 1


def test_released_predictions_by_name(registry, server):
    disps = np.random.default_rng(1).random((3, 4, 6), dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, disps)
    server.files["/tiny/disps_eigen_split.npy"] = buffer.getvalue()
    options = parse_evaluate(["--ext_disp_to_eval", "tiny", "--eval_stereo"])
    assert options.ext_disp_to_eval == str(rm.cache_dir() / "tiny.disps_eigen_split.npy")
    assert np.array_equal(np.load(options.ext_disp_to_eval), disps)
    assert parse_evaluate(["--ext_disp_to_eval", "tiny", "--eval_stereo"]).ext_disp_to_eval == options.ext_disp_to_eval
    assert server.requests == ["/tiny/disps_eigen_split.npy"]
    assert _cache_entries() == ["tiny.disps_eigen_split.npy", "tiny.disps_eigen_split.npy.sha256"]


def test_bad_predictions_are_not_cached(registry, server):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 6), np.float32))
    server.files["/tiny/disps_eigen_split.npy"] = buffer.getvalue()
    with pytest.raises(rm.ReleasedModelError, match=r"shape \(4, 6\); expected \[N,h,w\]"):
        parse_evaluate(["--ext_disp_to_eval", "tiny", "--eval_stereo"])
    registry(predictions_url=None)
    with pytest.raises(rm.ReleasedModelError, match="no predictions were released"):
        parse_evaluate(["--ext_disp_to_eval", "tiny", "--eval_stereo"])
    assert _cache_entries() == []


def test_list_prints_the_table(capsys):
    import test_simple
    with pytest.raises(SystemExit) as info:
        test_simple.main(["--pretrained", "list"])  # no --image_path needed, as with --help
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "DH-HR-Resnet50" in out and "mono+stereo_640x192" in out and "not re-measured" in out
    assert rm.main([]) == 0 and "DH-Resnet50-nopt" in capsys.readouterr().out


def test_the_registry_holds_the_published_facts():
    assert len(rm.MODELS) == 14
    dh = [m for m in rm.MODELS.values() if m.project == "Depth Hints"]
    assert [m.name for m in dh] == ["DH-Resnet50", "DH-Resnet50-nopt", "DH-HR-Resnet50",
                                    "DH-HR-Resnet50-nopt", "DH-HR-Mono+Stereo"]
    for m in rm.MODELS.values():
        assert m.url.startswith("https://storage.googleapis.com/niantic-lon-static/research/")
        assert (m.md5 is None) == (m.project == "Depth Hints")  # Depth Hints publishes none
        assert m.md5 is None or (len(m.md5) == 32 and int(m.md5, 16) >= 0)
        assert (m.width, m.height) in ((640, 192), (1024, 320))
        assert m.has_pose == ("M" in m.modality) and (m.eval_flag == "--eval_stereo") == ("S" in m.modality)
    assert all(m.predictions_url.endswith("/disps_eigen_split.npy") for m in dh)
    hr = rm.MODELS["DH-HR-Resnet50"]
    assert (hr.abs_rel, hr.sq_rel, hr.a1, hr.num_layers, hr.imagenet) == (0.096, 0.710, 0.890, 50, True)
    assert rm.MODELS["mono+stereo_640x192"].url.endswith("/monodepth2/mono%2Bstereo_640x192.zip")
    assert rm.MODELS["DH-HR-Mono+Stereo"].url.endswith("/DH-HR-Mono%2BStereo/models.zip")
    assert not rm.MODELS["stereo_no_pt_640x192"].imagenet


def _gt_npz(path, depths):
    data = np.empty(len(depths), dtype=object)
    for i, depth in enumerate(depths):
        data[i] = np.asarray(depth, np.float32)
    np.savez_compressed(path, data=data)


def test_evaluate_depth_by_name_equals_by_path(registry, server, release, tmp_path):
    """The README's one-line commands: --ext_disp_to_eval NAME and --pretrained NAME give the
    metrics of the same predictions / weights given by path."""
    import evaluate_depth
    split = tmp_path / "mini"
    split.mkdir()
    rng = np.random.default_rng(2)
    lines = []
    for i in range(2):
        image = tmp_path / "kitti" / "2011_09_26" / "2011_09_26_drive_0001_sync" / "image_02" / "data" / f"{i:010d}.png"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 120, 3), dtype=np.uint8)).save(image)
        lines.append(f"2011_09_26/2011_09_26_drive_0001_sync {i} l\n")
    (split / "test_files.txt").write_text("".join(lines))
    _gt_npz(split / "gt_depths.npz", [rng.uniform(5, 50, (40, 120)) for _ in lines])
    disps = rng.uniform(0.01, 0.2, (2, 8, 24)).astype(np.float32)
    np.save(tmp_path / "d.npy", disps)
    buffer = io.BytesIO()
    np.save(buffer, disps)
    server.files["/tiny/disps_eigen_split.npy"] = buffer.getvalue()
    folder = tmp_path / "by_hand"
    _write_folder(str(folder), release[0])

    def metrics(*argv):
        out = tmp_path / "m.json"
        assert evaluate_depth.main([*map(str, argv), "--eval_split", str(split), "--eval_stereo",
                                    "--data_path", str(tmp_path / "kitti"), "--png",
                                    "--num_workers", "0", "--no_cuda", "--output_json", str(out)]) == 0
        result = json.loads(out.read_text())
        return {k: result[k] for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3", "n")}

    by_name = metrics("--ext_disp_to_eval", "tiny")
    assert by_name == metrics("--ext_disp_to_eval", tmp_path / "d.npy")
    assert by_name["n"] == 2 and by_name["abs_rel"] > 0
    model_by_name = metrics("--pretrained", "tiny")
    assert model_by_name == metrics("--load_weights_folder", folder)
    assert model_by_name["abs_rel"] != by_name["abs_rel"]


def test_train_fine_tunes_from_a_released_model(registry, release, tiny_kitti):
    """train.py --pretrained NAME: the networks start from the released weights."""
    from depth_hints.trainer import Trainer
    args = ["--data_path", tiny_kitti, "--split", os.path.join(tiny_kitti, "split"), "--png",
            "--height", "64", "--width", "192", "--batch_size", "2", "--num_workers", "0",
            "--weights_init", "scratch", "--log_dir", os.path.join(tiny_kitti, "logs"),
            "--model_name", "ft", "--no_val", "--no_cuda", "--frame_ids", "0", "--use_stereo",
            "--pretrained", "tiny"]
    trainer = Trainer(parse_train(args))
    released = torch.load(io.BytesIO(release[0]["encoder.pth"]), weights_only=True)
    encoder = trainer.model.nets["encoder"].state_dict()
    assert all(torch.equal(encoder[k], released[k]) for k in encoder)
    saved = json.load(open(os.path.join(trainer.models_dir, "opt.json")))
    assert saved["pretrained"] == "tiny" and saved["load_weights_folder"] == str(rm.cache_dir() / "tiny")
