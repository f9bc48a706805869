"""--init_depth: the disparity heads' bias puts the initial prediction at a chosen depth."""
import math

import pytest
import torch

from depth_hints import geometry
from depth_hints.model import DepthHintsModel, set_initial_depth
from depth_hints.options import OptionsError, parse_train


@pytest.mark.parametrize("depth", [0.5, 2.0, 50.0])
def test_depth_to_disp_inverts_disp_to_depth(depth):
    sig = geometry.depth_to_disp(depth, 0.1, 100.0)
    # by hand: (1/d - 1/100) / (1/0.1 - 1/100)
    assert sig == pytest.approx((1 / depth - 0.01) / 9.99, rel=1e-12)
    _, back = geometry.disp_to_depth(torch.tensor(sig, dtype=torch.float64), 0.1, 100.0)
    assert float(back) == pytest.approx(depth, rel=1e-9)


def test_init_depth_sets_every_disparity_head():
    torch.manual_seed(0)
    model = DepthHintsModel(18, False, (0, "s"), init_depth=2.0)
    decoder = model.nets["depth"]
    expected_sig = (1 / 2.0 - 0.01) / 9.99
    for s in decoder.scales:
        conv = decoder._module("dispconv", s).conv
        assert float(conv.bias.detach()) == pytest.approx(math.log(expected_sig / (1 - expected_sig)), rel=1e-6)
        torch.nn.init.zeros_(conv.weight)  # then every pixel decodes to the bias alone
    out = model({("color_aug", 0, 0): torch.rand(1, 3, 64, 128)})
    for s in decoder.scales:
        _, depth = geometry.disp_to_depth(out[("disp", s)], 0.1, 100.0)
        torch.testing.assert_close(depth, torch.full_like(depth, 2.0))


def test_default_keeps_pytorch_initialisation():
    torch.manual_seed(0)
    a = DepthHintsModel(18, False, (0, "s")).nets["depth"].state_dict()
    torch.manual_seed(0)
    b = DepthHintsModel(18, False, (0, "s"), init_depth=0.0).nets["depth"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_depth_outside_the_depth_range_is_a_one_line_error():
    with pytest.raises(OptionsError, match="--init_depth 200 must lie between --min_depth 0.1 and --max_depth 100"):
        parse_train(["--use_stereo", "--frame_ids", "0", "--init_depth", "200"])
    with pytest.raises(ValueError, match="--init_depth"):
        set_initial_depth(DepthHintsModel(18, False, (0, "s")).nets["depth"], 0.05, 0.1, 100.0)
