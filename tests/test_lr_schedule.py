"""--lr_warmup_steps: a linear warm-up that scales the scheduler's learning rate during a step."""
import torch

from depth_hints.lr_schedule import warmed_up, warmup_factor


def test_warmup_factor_is_linear_then_one():
    assert [warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == warmup_factor(0, -3) == 1.0  # off: monodepth2's behaviour


def test_warmed_up_step_uses_the_scaled_rate_and_restores_it():
    w = torch.nn.Parameter(torch.zeros(3))
    sgd = torch.optim.SGD([w], lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(sgd, 10, 0.1)
    w.grad = torch.ones(3)
    with warmed_up(sgd, step=1, warmup_steps=4) as factor:  # second step of four: 0.5
        assert factor == 0.5
        sgd.step()
    torch.testing.assert_close(w.detach(), torch.full((3,), -0.25))  # 0.5 * 0.5 * 1
    assert sgd.param_groups[0]["lr"] == 0.5 and scheduler.get_last_lr() == [0.5]
    with warmed_up(sgd, step=4, warmup_steps=4):  # past the warm-up: the full rate
        sgd.step()
    torch.testing.assert_close(w.detach(), torch.full((3,), -0.75))
