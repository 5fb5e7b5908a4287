import pytest
import torch

from wavecraft.train.balancer import Balancer


def test_balanced_gradient_shares_follow_weights_not_loss_scale():
    y = torch.randn(4, 1, 10, requires_grad=True)
    g1 = torch.autograd.grad(1000 * (y**2).sum(), y)[0]
    g2 = torch.autograd.grad(0.001 * y.sum(), y)[0]
    bal = Balancer({"big": 3.0, "small": 1.0}, per_batch_item=False, total_norm=2.0)
    bal.backward({"big": 1000 * (y**2).sum(), "small": 0.001 * y.sum()}, y)
    expected = 2.0 * (0.75 * g1 / g1.norm() + 0.25 * g2 / g2.norm())
    torch.testing.assert_close(y.grad, expected)
    assert bal.last_norms["big"] == pytest.approx(g1.norm().item(), rel=1e-5)


def test_ema_smooths_norms_and_state_roundtrips():
    bal = Balancer({"a": 1.0}, ema_decay=0.5, per_batch_item=False)
    for scale in (1.0, 3.0):
        y = torch.ones(1, 4, requires_grad=True)
        bal.backward({"a": scale * y.sum()}, y)
    # raw norms 2 then 6; bias-corrected EMA = (0.5*2 + 6) / (0.5 + 1) = 14/3
    assert y.grad[0, 0].item() == pytest.approx(3.0 / (14 / 3), rel=1e-5)
    clone = Balancer({"a": 1.0}, ema_decay=0.5)
    clone.load_state_dict(bal.state_dict())
    assert clone.state_dict() == bal.state_dict()


def test_gradient_flows_into_model_and_unknown_loss_rejected():
    model = torch.nn.Linear(3, 3)
    out = model(torch.randn(2, 3))
    Balancer({"l1": 1.0, "zero": 0.0}).backward({"l1": out.abs().mean(), "zero": out.sum()}, out)
    assert model.weight.grad is not None
    with pytest.raises(KeyError, match="no balancer weight"):
        out = model(torch.randn(2, 3))
        Balancer({"l1": 1.0}).backward({"other": out.sum()}, out)
