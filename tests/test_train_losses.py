import math

import numpy as np
import pytest
import torch

from wavecraft.train.losses import (MelSpectrogram, MultiScaleMelLoss, cross_entropy_per_codebook,
                                    feature_matching_loss, hinge_discriminator_loss, hinge_generator_loss,
                                    mel_filterbank)


@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [(32000, 1024, 64, 0.0, None), (8000, 256, 40, 64.0, 3000.0)])
def test_mel_filterbank_matches_transformers_htk(sr, n_fft, n_mels, fmin, fmax):
    from transformers.audio_utils import mel_filter_bank

    ref = mel_filter_bank(n_fft // 2 + 1, n_mels, fmin, fmax or sr / 2, sr, norm=None, mel_scale="htk")
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    assert ours.shape == (n_fft // 2 + 1, n_mels)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)


def test_mel_spectrogram_peaks_at_tone_frequency():
    sr = 16000
    t = torch.arange(sr) / sr
    wav = torch.sin(2 * math.pi * 1000 * t)[None, None]
    mel = MelSpectrogram(sr, 1024, 256, n_mels=64, log=False)(wav)  # [1, 1, 64, frames]
    fb = mel_filterbank(sr, 1024, 64)
    expected_band = int(fb[round(1000 / (sr / 1024))].argmax())
    assert int(mel[0, 0, :, 10].argmax()) == expected_band


def test_multiscale_mel_loss_zero_on_identity_and_grows_with_error():
    torch.manual_seed(0)
    loss = MultiScaleMelLoss(8000, range_start=5, range_end=9, n_mels=32)
    x = torch.randn(2, 1, 4000) * 0.1
    assert loss(x, x).item() == 0.0
    small = loss(x + 0.01 * torch.randn_like(x), x).item()
    big = loss(x + 0.1 * torch.randn_like(x), x).item()
    assert 0 < small < big
    y = x.clone().requires_grad_(True)
    loss(y, x + 0.05).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_hinge_and_feature_matching_values():
    real = [torch.tensor([2.0, 0.5]), torch.tensor([-1.0])]
    fake = [torch.tensor([-2.0, 0.0]), torch.tensor([1.0])]
    # scale 1: relu(1-real)=[0, .5] mean .25; relu(1+fake)=[0, 1] mean .5 -> .75
    # scale 2: relu(1-(-1))=2; relu(1+1)=2 -> 4. Mean over scales: 2.375
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(2.375)
    # generator: relu(1-fake): scale 1 [3, 1] -> 2; scale 2 [0] -> 0; mean 1
    assert hinge_generator_loss(fake).item() == pytest.approx(1.0)
    r = [[torch.ones(2, 3), 2 * torch.ones(4)]]
    f = [[torch.zeros(2, 3), 2 * torch.ones(4)]]
    # layer 1: L1 1 / mean|r| 1 = 1; layer 2: 0 -> mean 0.5
    assert feature_matching_loss(r, f).item() == pytest.approx(0.5, rel=1e-6)


def test_cross_entropy_per_codebook_masks_and_averages():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 7)
    targets = torch.randint(0, 7, (2, 3, 5))
    mask = torch.rand(2, 3, 5) > 0.3
    mask[:, 2] = False  # a codebook with nothing valid contributes 0, not NaN
    targets[~mask] = 99  # junk where masked must not matter
    mean, per_k = cross_entropy_per_codebook(logits, targets, mask)
    for k in range(2):
        sel = mask[:, k]
        ref = torch.nn.functional.cross_entropy(logits[:, k][sel], targets[:, k][sel])
        assert per_k[k].item() == pytest.approx(ref.item(), rel=1e-5)
    assert per_k[2].item() == 0.0
    assert mean.item() == pytest.approx(per_k.mean().item())
