"""Tests for the depth and pose networks: shapes, state-dict keys and weight loading."""

from __future__ import annotations

import os
import socket
import time
import urllib.error

import pytest
import torch

from networks import DepthDecoder, PoseCNN, PoseDecoder, ResnetEncoder
from networks import resnet
from networks import resnet_encoder as resnet_module

R18_CH = [64, 64, 128, 256, 512]
R50_CH = [64, 256, 512, 1024, 2048]


def _features(num_ch_enc: list[int], batch: int, height: int, width: int) -> list[torch.Tensor]:
    """Random encoder-like features [B,C_i,H/2^(i+1),W/2^(i+1)]."""
    return [
        torch.rand(batch, c, height // 2 ** (i + 1), width // 2 ** (i + 1))
        for i, c in enumerate(num_ch_enc)
    ]


# ---------------------------------------------------------------- encoder


def test_resnet18_features_and_channels() -> None:
    torch.manual_seed(0)
    enc = ResnetEncoder(18, pretrained=False).eval()
    assert enc.num_ch_enc.tolist() == R18_CH
    with torch.no_grad():
        feats = enc(torch.rand(2, 3, 64, 96))
    assert len(feats) == 5
    for i, (f, c) in enumerate(zip(feats, R18_CH)):
        assert f.shape == (2, c, 64 // 2 ** (i + 1), 96 // 2 ** (i + 1))


def test_resnet50_features_and_channels() -> None:
    torch.manual_seed(0)
    enc = ResnetEncoder(50, pretrained=False).eval()
    assert enc.num_ch_enc.tolist() == R50_CH
    with torch.no_grad():
        feats = enc(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [
        (1, c, 64 // 2 ** (i + 1), 64 // 2 ** (i + 1)) for i, c in enumerate(R50_CH)
    ]


def test_encoder_normalises_input() -> None:
    enc = ResnetEncoder(18, pretrained=False).eval()
    conv1 = enc.encoder.conv1
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = enc.encoder.relu(enc.encoder.bn1(conv1((image - 0.45) / 0.225)))
        assert torch.allclose(enc(image)[0], expected)


def test_multi_image_encoder() -> None:
    enc = ResnetEncoder(18, pretrained=False, num_input_images=2).eval()
    assert enc.encoder.conv1.in_channels == 6
    assert enc.encoder.conv1.weight.shape == (64, 6, 7, 7)
    assert enc.encoder.conv1.bias is None
    with torch.no_grad():
        feats = enc(torch.rand(1, 6, 64, 64))
    assert feats[-1].shape == (1, 512, 2, 2)


@pytest.mark.parametrize("num_layers", [0, 10, 20, 200])
def test_invalid_num_layers(num_layers: int) -> None:
    with pytest.raises(ValueError, match=r"18, 34, 50, 101, 152"):
        ResnetEncoder(num_layers, pretrained=False)


def test_encoder_state_dict_keys() -> None:
    keys = ResnetEncoder(18, pretrained=False).state_dict().keys()
    for key in [
        "encoder.conv1.weight",
        "encoder.bn1.weight",
        "encoder.bn1.running_mean",
        "encoder.layer1.0.conv1.weight",
        "encoder.layer2.0.downsample.0.weight",
        "encoder.layer4.1.bn2.running_var",
        "encoder.fc.weight",
        "encoder.fc.bias",
    ]:
        assert key in keys
    assert all(k.startswith("encoder.") for k in keys)


# ---------------------------------------------------------------- pretrained weights


def _use_empty_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))


@pytest.mark.parametrize(
    "error",
    [urllib.error.URLError("no route to host"), socket.timeout("timed out"), socket.gaierror(-3, "dns")],
)
def test_pretrained_offline_fails_fast(monkeypatch, tmp_path, error: OSError) -> None:
    _use_empty_hub_cache(monkeypatch, tmp_path)
    seen_timeouts: list[float | None] = []

    def offline_download(url: str, dst: str, *args, **kwargs) -> None:
        seen_timeouts.append(socket.getdefaulttimeout())
        raise error

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline_download)
    before = socket.getdefaulttimeout()
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"--weights_init scratch") as info:
        ResnetEncoder(18, pretrained=True)
    assert time.monotonic() - start < 5.0
    message = str(info.value)
    assert "ResNet18" in message
    assert str(tmp_path) in message  # hub cache location is printed
    assert seen_timeouts == [resnet_module.DOWNLOAD_TIMEOUT_S]  # real path runs with a timeout
    assert socket.getdefaulttimeout() == before  # and restores the previous one


def test_pretrained_loads_from_hub_cache_without_network(monkeypatch, tmp_path) -> None:
    _use_empty_hub_cache(monkeypatch, tmp_path)

    def no_network(*args, **kwargs):
        raise AssertionError("network must not be used when the checkpoint is cached")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)

    torch.manual_seed(1)
    reference = ResnetEncoder(18, pretrained=False).encoder.state_dict()
    path = resnet_module.imagenet_checkpoint_path(18)
    assert path.startswith(os.path.join(str(tmp_path), "checkpoints"))
    os.makedirs(os.path.dirname(path))
    torch.save(reference, path)

    single = ResnetEncoder(18, pretrained=True)
    assert torch.equal(single.encoder.layer3[0].conv1.weight, reference["layer3.0.conv1.weight"])

    pair = ResnetEncoder(18, pretrained=True, num_input_images=2)
    w = reference["conv1.weight"]
    assert torch.allclose(pair.encoder.conv1.weight, torch.cat([w, w], dim=1) / 2)
    assert torch.equal(pair.encoder.fc.weight, reference["fc.weight"])


# ---------------------------------------------------------------- our ResNet vs torchvision's


@pytest.mark.parametrize("num_layers", [18, 34, 50])
def test_resnet_initialises_like_torchvision(num_layers: int) -> None:
    """Same seed -> the same modules (names, strides, paddings), the same state-dict keys in the
    same order, every tensor bit-equal, and the RNG left in the same state afterwards."""
    torchvision_models = pytest.importorskip("torchvision.models")
    torch.manual_seed(7)
    ours = resnet.ResNet(num_layers)
    rng_after_ours = torch.get_rng_state()
    torch.manual_seed(7)
    theirs = getattr(torchvision_models, f"resnet{num_layers}")(weights=None)
    assert torch.equal(rng_after_ours, torch.get_rng_state())
    assert repr(ours) == repr(theirs)  # every conv's stride (3x3 in bottlenecks), pad, bias
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_resnet18_forward_equals_torchvision_with_the_same_weights() -> None:
    """torchvision weights (with non-trivial BN statistics) load strictly into ours, and the
    logits and every stage's features agree in eval mode."""
    torchvision_models = pytest.importorskip("torchvision.models")
    torch.manual_seed(3)
    theirs = torchvision_models.resnet18(weights=None).eval()
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    ours = resnet.ResNet(18).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    image = torch.rand(2, 3, 48, 64)
    with torch.no_grad():
        assert torch.equal(ours(image), theirs(image))
        x, y = image, image
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            x, y = getattr(ours, name)(x), getattr(theirs, name)(y)
            assert torch.equal(x, y), name
    assert x.shape == (2, 512, 2, 2)


def test_a_monodepth2_folder_built_from_torchvision_weights_loads_strictly(tmp_path) -> None:
    """monodepth2's encoder.pth is torchvision's ResNet state dict under "encoder." plus height,
    width and use_stereo: the weights-folder loader (strict load_state_dict) takes it unchanged."""
    torchvision_models = pytest.importorskip("torchvision.models")
    from depth_hints.checkpoints import load_depth_model
    torch.manual_seed(5)
    theirs = torchvision_models.resnet18(weights=None).state_dict()
    encoder_file = {f"encoder.{k}": v for k, v in theirs.items()}
    encoder_file.update(height=192, width=640, use_stereo=True)
    torch.save(encoder_file, tmp_path / "encoder.pth")
    torch.save(DepthDecoder(R18_CH).state_dict(), tmp_path / "depth.pth")
    encoder, _, info = load_depth_model(str(tmp_path))
    assert (info.num_layers, info.height, info.width, info.use_stereo) == (18, 192, 640, True)
    ours = encoder.encoder.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_imagenet_cache_file_names_are_torchvisions() -> None:
    names = {n: os.path.basename(resnet_module.imagenet_checkpoint_path(n)) for n in (18, 34, 50, 101, 152)}
    assert names == {18: "resnet18-f37072fd.pth", 34: "resnet34-b627a593.pth", 50: "resnet50-0676ba61.pth",
                     101: "resnet101-63fe2227.pth", 152: "resnet152-394f9c45.pth"}


# ---------------------------------------------------------------- depth decoder


@pytest.mark.parametrize("scales", [range(4), [0], [1, 3]])
def test_depth_decoder_outputs(scales) -> None:
    torch.manual_seed(0)
    dec = DepthDecoder(R18_CH, scales=scales)
    with torch.no_grad():
        out = dec(_features(R18_CH, 2, 64, 96))
    assert set(out) == {("disp", s) for s in scales}
    for s in scales:
        disp = out[("disp", s)]
        assert disp.shape == (2, 1, 64 // 2**s, 96 // 2**s)
        assert disp.min() > 0 and disp.max() < 1


def test_depth_decoder_output_channels_and_no_skips() -> None:
    dec = DepthDecoder(R18_CH, scales=[0], num_output_channels=2, use_skips=False)
    with torch.no_grad():
        out = dec(_features(R18_CH, 1, 64, 64))
    assert out[("disp", 0)].shape == (1, 2, 64, 64)
    assert dec.state_dict()["decoder.1.conv.conv.weight"].shape == (256, 256, 3, 3)


def test_depth_decoder_state_dict_keys() -> None:
    sd = DepthDecoder(R18_CH).state_dict()
    expected_shapes = {
        "decoder.0.conv.conv.weight": (256, 512, 3, 3),  # upconv(4,0)
        "decoder.0.conv.conv.bias": (256,),
        "decoder.1.conv.conv.weight": (256, 256 + 256, 3, 3),  # upconv(4,1) with skip
        "decoder.2.conv.conv.weight": (128, 256, 3, 3),  # upconv(3,0)
        "decoder.7.conv.conv.weight": (32, 32 + 64, 3, 3),  # upconv(1,1)
        "decoder.8.conv.conv.weight": (16, 32, 3, 3),  # upconv(0,0)
        "decoder.9.conv.conv.weight": (16, 16, 3, 3),  # upconv(0,1), no skip
        "decoder.9.conv.conv.bias": (16,),
        "decoder.10.conv.weight": (1, 16, 3, 3),  # dispconv(0)
        "decoder.11.conv.weight": (1, 32, 3, 3),  # dispconv(1)
        "decoder.13.conv.weight": (1, 128, 3, 3),  # dispconv(3)
        "decoder.13.conv.bias": (1,),
    }
    for key, shape in expected_shapes.items():
        assert tuple(sd[key].shape) == shape, key
    upconv = {f"decoder.{i}.conv.conv.{p}" for i in range(10) for p in ("weight", "bias")}
    dispconv = {f"decoder.{i}.conv.{p}" for i in range(10, 14) for p in ("weight", "bias")}
    assert set(sd) == upconv | dispconv
    assert len(DepthDecoder(R18_CH).decoder) == 14


def test_depth_decoder_keys_single_scale() -> None:
    sd = DepthDecoder(R50_CH, scales=[0]).state_dict()
    assert len(sd) == 22
    assert sd["decoder.0.conv.conv.weight"].shape == (256, 2048, 3, 3)
    assert sd["decoder.10.conv.weight"].shape == (1, 16, 3, 3)


# ---------------------------------------------------------------- pose networks


def test_pose_decoder_shapes_and_keys() -> None:
    dec = PoseDecoder(R18_CH, num_input_features=1, num_frames_to_predict_for=2)
    sd = dec.state_dict()
    assert set(sd) == {f"net.{i}.{p}" for i in range(4) for p in ("weight", "bias")}
    assert sd["net.0.weight"].shape == (256, 512, 1, 1)
    assert sd["net.1.weight"].shape == (256, 256, 3, 3)
    assert sd["net.2.weight"].shape == (256, 256, 3, 3)
    assert sd["net.3.weight"].shape == (12, 256, 1, 1)
    with torch.no_grad():
        axisangle, translation = dec([_features(R18_CH, 3, 64, 64)])
    assert axisangle.shape == translation.shape == (3, 2, 1, 3)


def test_pose_decoder_default_frames_and_stride() -> None:
    dec = PoseDecoder(R18_CH, num_input_features=2, stride=2)
    assert dec.num_frames_to_predict_for == 1
    assert dec.net[1].in_channels == 512 and dec.net[1].stride == (2, 2)
    feats = [_features(R18_CH, 2, 64, 64), _features(R18_CH, 2, 64, 64)]
    with torch.no_grad():
        axisangle, translation = dec(feats)
    assert axisangle.shape == translation.shape == (2, 1, 1, 3)


def test_pose_decoder_last_conv_analytic() -> None:
    dec = PoseDecoder(R18_CH, num_input_features=1, num_frames_to_predict_for=2)
    feats = [_features(R18_CH, 2, 64, 64)]
    with torch.no_grad():
        dec.net[3].weight.zero_()
        dec.net[3].bias.zero_()
        axisangle, translation = dec(feats)
        assert torch.count_nonzero(axisangle) == 0 and torch.count_nonzero(translation) == 0

        bias = torch.arange(12, dtype=torch.float32)
        dec.net[3].bias.copy_(bias)
        axisangle, translation = dec(feats)
    pose = 0.01 * bias.view(2, 1, 6)
    assert torch.allclose(axisangle, pose[..., :3].expand(2, 2, 1, 3))
    assert torch.allclose(translation, pose[..., 3:].expand(2, 2, 1, 3))


def test_pose_cnn_shapes_keys_and_analytic() -> None:
    net = PoseCNN(num_input_frames=3)
    sd = net.state_dict()
    expected = {f"net.{i}.{p}" for i in range(7) for p in ("weight", "bias")}
    assert set(sd) == expected | {"pose_conv.weight", "pose_conv.bias"}
    assert sd["net.0.weight"].shape == (16, 9, 7, 7)
    assert sd["net.1.weight"].shape == (32, 16, 5, 5)
    assert sd["net.6.weight"].shape == (256, 256, 3, 3)
    assert sd["pose_conv.weight"].shape == (12, 256, 1, 1)

    image = torch.rand(2, 9, 64, 64)
    with torch.no_grad():
        axisangle, translation = net(image)
        assert axisangle.shape == translation.shape == (2, 2, 1, 3)
        net.pose_conv.weight.zero_()
        net.pose_conv.bias.zero_()
        axisangle, translation = net(image)
    assert torch.count_nonzero(axisangle) == 0 and torch.count_nonzero(translation) == 0


def test_pose_cnn_needs_two_frames() -> None:
    with pytest.raises(ValueError):
        PoseCNN(num_input_frames=1)


# ---------------------------------------------------------------- save / load round trip


def _roundtrip(make, tmp_path) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    original = make().eval()
    path = tmp_path / "weights.pth"
    torch.save(original.state_dict(), path)
    torch.manual_seed(123)
    restored = make().eval()
    restored.load_state_dict(torch.load(path, weights_only=True), strict=True)
    return original, restored


def test_roundtrip_depth_network(tmp_path) -> None:
    enc, enc2 = _roundtrip(lambda: ResnetEncoder(18, pretrained=False), tmp_path)
    dec, dec2 = _roundtrip(lambda: DepthDecoder(R18_CH), tmp_path)
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out, out2 = dec(enc(image)), dec2(enc2(image))
    assert out.keys() == out2.keys()
    for key in out:
        assert torch.equal(out[key], out2[key])


def test_roundtrip_pose_networks(tmp_path) -> None:
    enc, enc2 = _roundtrip(lambda: ResnetEncoder(18, pretrained=False, num_input_images=2), tmp_path)
    dec, dec2 = _roundtrip(lambda: PoseDecoder(R18_CH, 1, 1), tmp_path)
    cnn, cnn2 = _roundtrip(lambda: PoseCNN(2), tmp_path)
    pair = torch.rand(1, 6, 64, 64)
    with torch.no_grad():
        for a, b in zip(dec([enc(pair)]), dec2([enc2(pair)])):
            assert torch.equal(a, b)
        for a, b in zip(cnn(pair), cnn2(pair)):
            assert torch.equal(a, b)
