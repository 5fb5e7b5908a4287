import torch

from wavecraft.train.discriminator import DiscriminatorConfig, MultiScaleSTFTDiscriminator

TINY = DiscriminatorConfig(filters=4, max_filters=8, filters_scale=2, n_ffts=(128, 64), hop_lengths=(32, 16),
                           win_lengths=(128, 64))


def test_default_config_is_encodec_shape():
    cfg = DiscriminatorConfig()
    assert cfg.n_ffts == (1024, 2048, 512, 256, 128) and cfg.hop_lengths == (256, 512, 128, 64, 32)
    disc = MultiScaleSTFTDiscriminator(1, cfg)
    logits, feats = disc(torch.randn(1, 1, 4096))
    assert len(logits) == 5 and all(len(f) == 5 for f in feats)  # conv0 + 3 dilated + square conv
    # Frequency axis is strided by 2 three times: 513 bins -> 65 (n_fft 1024).
    assert logits[0].shape[-1] == 65 and logits[0].shape[1] == 1


def test_shapes_stereo_and_gradients():
    disc = MultiScaleSTFTDiscriminator(2, TINY)
    x = torch.randn(3, 2, 1000, requires_grad=True)
    logits, feats = disc(x)
    assert [l.shape[0] for l in logits] == [3, 3]
    assert feats[0][0].shape[1] == 4 and feats[0][-1].shape[1] == 8  # capped by max_filters
    sum(l.mean() for l in logits).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters())


def test_channels_are_not_mixed_up_across_batch():
    disc = MultiScaleSTFTDiscriminator(1, TINY).eval()
    a, b = torch.randn(1, 1, 800), torch.randn(1, 1, 800)
    la, _ = disc(a)
    lab, _ = disc(torch.cat([a, b]))
    assert torch.allclose(la[0][0], lab[0][0], atol=1e-5)
