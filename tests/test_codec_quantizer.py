"""Residual vector quantizer: nearest-codeword search, residual structure, and the training
machinery (k-means init, EMA, dead codes, commitment loss, straight-through, dropout)."""
from __future__ import annotations

import torch

from wavecraft.codec.quantizer import Codebook, ResidualVectorQuantizer, kmeans


def _rvq(n_q: int = 3, bins: int = 16, dim: int = 4, **kw) -> ResidualVectorQuantizer:
    torch.manual_seed(0)
    return ResidualVectorQuantizer(dim, bins, n_q, **kw)


def test_encode_picks_nearest_codewords_stage_by_stage() -> None:
    rvq = _rvq(kmeans_init=False).eval()
    x = torch.randn(2, 4, 7)
    codes = rvq.encode(x)
    assert codes.shape == (2, 3, 7)
    residual = x.transpose(1, 2).reshape(-1, 4)
    for k, layer in enumerate(rvq.layers):
        brute = torch.cdist(residual, layer.embed).argmin(dim=1)
        assert torch.equal(codes[:, k].reshape(-1), brute)
        residual = residual - layer.embed[brute]
    decoded = rvq.decode(codes)
    torch.testing.assert_close(decoded, x - residual.view(2, 7, 4).transpose(1, 2))


def test_kmeans_finds_separated_clusters() -> None:
    torch.manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    samples = (centers[:, None] + 0.1 * torch.randn(3, 50, 2)).reshape(-1, 2)
    means, bins = kmeans(samples, 3, 10)
    found = sorted(tuple(round(v) for v in m.tolist()) for m in means)
    assert found == [(0, 0), (0, 10), (10, 0)] and sorted(bins.tolist()) == [50, 50, 50]


def test_first_training_batch_initialises_by_kmeans_then_ema_moves_codewords() -> None:
    torch.manual_seed(0)
    book = Codebook(2, 4, decay=0.5, kmeans_iters=5, threshold_ema_dead_code=0).train()
    assert not bool(book.inited)
    x = torch.randn(64, 2)
    book.train_step(x)
    assert bool(book.inited) and book.cluster_size.sum() > 0
    before = book.embed.clone()
    shifted = x + 3.0
    for _ in range(30):
        book.train_step(shifted)
    # EMA pulls the used codewords towards the new data's cluster means.
    assert (book.embed.mean(0) - shifted.mean(0)).norm() < (before.mean(0) - shifted.mean(0)).norm()


def test_dead_codes_are_replaced_by_batch_vectors() -> None:
    torch.manual_seed(0)
    book = Codebook(2, 8, kmeans_init=False, threshold_ema_dead_code=2).train()
    far = torch.full((8, 2), 100.0)
    book.embed.copy_(far)  # nothing will ever pick these... until they are replaced
    x = torch.randn(32, 2)
    book.train_step(x)
    # Every codeword was dead (usage 0 < 2): each now sits near one of the batch vectors (the EMA
    # step after the replacement moves it only slightly) instead of being averaged away.
    assert torch.cdist(book.embed, x).min(dim=1).values.max() < 0.5


def test_training_forward_penalty_straight_through_and_dropout() -> None:
    rvq = _rvq(n_q=4, kmeans_init=False, q_dropout=True).train()
    x = torch.randn(3, 4, 5, requires_grad=True)
    seen = set()
    for _ in range(30):
        seen.add(rvq(x, frame_rate=50).codes.shape[1])
    assert seen == {1, 2, 3, 4}  # quantizer dropout samples every depth
    rvq.q_dropout = False
    rvq.threshold_ema_dead_code = 0
    for layer in rvq.layers:
        layer.threshold_ema_dead_code, layer.decay = 0, 1.0  # freeze codebooks to check the loss exactly
    out = rvq(x, frame_rate=50)
    assert out.bandwidth == 4 * 4 * 50 / 1000
    residual, expected = x.detach().transpose(1, 2).reshape(-1, 4), []
    for layer, codes in zip(rvq.layers, out.codes.transpose(1, 2).reshape(-1, 4).t()):
        q = layer.embed[codes]
        expected.append(((residual - q) ** 2).mean())
        residual = residual - q
    torch.testing.assert_close(out.penalty, torch.stack(expected).mean())
    out.quantized.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))  # straight-through: identity gradient
    rvq.eval()
    assert rvq(x, frame_rate=50).penalty.item() == 0.0


def test_inference_distances_are_the_references_expression_bit_for_bit():
    from wavecraft.codec.quantizer import _neg_sq_distance

    g = torch.Generator().manual_seed(3)
    for n, k, d in [(500, 2048, 128), (37, 1024, 8), (1, 16, 4)]:
        x, embed = torch.randn(n, d, generator=g), torch.randn(k, d, generator=g)
        reference = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed.t() + embed.pow(2).sum(1)[None])
        with torch.no_grad():
            assert torch.equal(_neg_sq_distance(x, embed), reference)
        x.requires_grad_(True)
        with torch.enable_grad():
            out = _neg_sq_distance(x, embed)
        assert out.grad_fn is not None and torch.equal(out.detach(), reference)
