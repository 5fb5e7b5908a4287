"""EnCodec's gradient balancer.

Losses computed from the model output `y` have gradients of wildly different sizes (an adversarial
loss vs an L1 in time). Instead of tuning raw loss weights, the balancer takes each loss's gradient
with respect to `y`, divides it by an EMA of its norm, and rescales it so that loss `i` contributes
a fraction `w_i / sum(w)` of a gradient with norm `total_norm`. The sum is then backpropagated once
through the model. Weights therefore read as "share of the gradient", independent of loss scale.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


class Balancer:
    def __init__(self, weights: dict[str, float], total_norm: float = 1.0, ema_decay: float = 0.999,
                 per_batch_item: bool = True, balance: bool = True, epsilon: float = 1e-12):
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"balancer weights must be >= 0, got {weights}")
        self.weights = dict(weights)
        self.total_norm = total_norm
        self.ema_decay = ema_decay
        self.per_batch_item = per_batch_item
        self.balance = balance
        self.epsilon = epsilon
        # Bias-corrected EMA: value = sum / count, both decayed, so early steps are not biased to 0.
        self.ema_sum: dict[str, float] = {}
        self.ema_count: dict[str, float] = {}
        self.last_norms: dict[str, float] = {}

    def _update_ema(self, norms: dict[str, float]) -> dict[str, float]:
        out = {}
        for name, value in norms.items():
            self.ema_sum[name] = self.ema_decay * self.ema_sum.get(name, 0.0) + value
            self.ema_count[name] = self.ema_decay * self.ema_count.get(name, 0.0) + 1.0
            out[name] = self.ema_sum[name] / self.ema_count[name]
        return out

    def backward(self, losses: dict[str, torch.Tensor], output: torch.Tensor) -> dict[str, float]:
        """Backpropagate the balanced combination of `losses` (each a function of `output`).

        Returns the per-loss gradient norms this step (before balancing), for logging.
        """
        unknown = set(losses) - set(self.weights)
        if unknown:
            raise KeyError(f"losses {sorted(unknown)} have no balancer weight; known: {sorted(self.weights)}")
        grads: dict[str, torch.Tensor] = {}
        norms: dict[str, torch.Tensor] = {}
        for name, loss in losses.items():
            if self.weights[name] == 0:
                continue
            (grad,) = torch.autograd.grad(loss, [output], retain_graph=True)
            if self.per_batch_item:
                norm = grad.flatten(1).norm(dim=1).mean()
            else:
                norm = grad.norm()
            grads[name], norms[name] = grad, norm
        if not grads:
            return {}
        stacked = torch.stack([norms[n] for n in grads])
        if dist.is_available() and dist.is_initialized():
            # Every rank must rescale identically, so norms are averaged across the data-parallel group.
            dist.all_reduce(stacked)
            stacked /= dist.get_world_size()
        raw = {n: float(v) for n, v in zip(grads, stacked.tolist())}
        self.last_norms = raw
        avg = self._update_ema(raw)
        total_weight = sum(self.weights[n] for n in grads)
        out_grad = torch.zeros_like(output)
        for name, grad in grads.items():
            if self.balance:
                scale = self.weights[name] / total_weight * self.total_norm / (self.epsilon + avg[name])
            else:
                scale = self.weights[name]
            out_grad.add_(grad, alpha=scale)
        output.backward(out_grad)
        return raw

    def state_dict(self) -> dict[str, dict[str, float]]:
        return {"ema_sum": dict(self.ema_sum), "ema_count": dict(self.ema_count)}

    def load_state_dict(self, state: dict[str, dict[str, float]]) -> None:
        self.ema_sum = {k: float(v) for k, v in state["ema_sum"].items()}
        self.ema_count = {k: float(v) for k, v in state["ema_count"].items()}
