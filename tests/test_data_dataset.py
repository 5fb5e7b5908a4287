import math
import random

import numpy as np
import pytest
import soundfile
import torch

from wavecraft.data.dataset import DataConfig, SegmentDataset, StepBatchSampler, make_loader, mix_at_snr
from wavecraft.data.manifest import AudioMeta, ManifestError, read_manifest
from wavecraft.errors import WavecraftError
from wavecraft.train.toydata import make_toy_dataset


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), n_files=6, sample_rate=8000, duration=1.0)


def _cfg(**kw):
    base = dict(segment_duration=0.5, sample_rate=8000, batch_size=3, num_workers=0)
    base.update(kw)
    return DataConfig(**base)


def _batches(loader, n):
    out = []
    for i, batch in enumerate(loader):
        out.append(batch)
        if i + 1 == n:
            break
    return out


def test_items_are_deterministic_and_shaped(toy):
    ds = SegmentDataset.from_manifest(toy, _cfg(), seed=1)
    a, b = ds[5], ds[5]
    assert a["wav"].shape == (1, 4000) and a["wav"].dtype == torch.float32
    assert torch.equal(a["wav"], b["wav"]) and a["caption"] == b["caption"] and a["length"] == 4000
    assert a["caption"].startswith(("a pure sine", "a major chord", "short bursts"))
    other_seed = SegmentDataset.from_manifest(toy, _cfg(), seed=2)
    assert any(not torch.equal(ds[i]["wav"], other_seed[i]["wav"]) for i in range(4))


def test_batches_do_not_depend_on_workers_and_resume_at_any_batch(toy):
    ds = SegmentDataset.from_manifest(toy, _cfg(), seed=0)
    serial = _batches(make_loader(ds, 3, num_workers=0), 4)
    parallel = _batches(make_loader(ds, 3, num_workers=2), 4)
    resumed = _batches(make_loader(ds, 3, num_workers=0, start_batch=2), 2)
    for x, y in zip(serial, parallel):
        assert torch.equal(x["wav"], y["wav"]) and x["caption"] == y["caption"]
    for x, y in zip(serial[2:], resumed):
        assert torch.equal(x["wav"], y["wav"])


def test_ranks_get_disjoint_items():
    r0 = list(iter(StepBatchSampler(2, 0, 3, rank=0, world_size=2)))
    r1 = list(iter(StepBatchSampler(2, 0, 3, rank=1, world_size=2)))
    flat0, flat1 = sum(r0, []), sum(r1, [])
    assert not set(flat0) & set(flat1) and sorted(flat0 + flat1) == list(range(12))


def test_sampling_follows_weights(tmp_path, toy):
    metas = read_manifest(toy)[:3]
    metas[0].weight, metas[1].weight, metas[2].weight = 3.0, 1.0, 0.0
    ds = SegmentDataset(metas, _cfg(captions={}), seed=0, with_captions=False)
    counts = {m.path: 0 for m in metas}
    rng_draws = [ds._pick(random.Random(i)) for i in range(4000)]
    for m in rng_draws:
        counts[m.path] += 1
    assert counts[metas[2].path] == 0
    assert counts[metas[0].path] / 4000 == pytest.approx(0.75, abs=0.03)


def test_resampling_and_channel_conversion(tmp_path):
    sr = 16000
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * math.pi * 1000 * t), np.sin(2 * math.pi * 1000 * t)], 1) * 0.5
    soundfile.write(str(tmp_path / "s.wav"), stereo.astype(np.float32), sr)
    ds = SegmentDataset([AudioMeta(str(tmp_path / "s.wav"), 1.0, sr)], _cfg(segment_duration=1.0), seed=0)
    wav = ds[0]["wav"]
    assert wav.shape == (1, 8000)
    spectrum = torch.fft.rfft(wav[0]).abs()
    assert int(spectrum.argmax()) == 1000  # 1 kHz survives resampling to 8 kHz (1 Hz bins)
    assert ds[0]["caption"] is None  # no sidecar -> unconditional


def test_bad_files_are_skipped_and_counted(tmp_path, toy):
    metas = read_manifest(toy)[:2]
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....garbage")
    soundfile.write(str(tmp_path / "trunc.wav"), np.zeros(400, np.float32), 8000)  # 0.05 s, claims 5 s
    (tmp_path / "trunc.json").write_text("{not json")
    metas += [AudioMeta(str(tmp_path / "corrupt.wav"), 5.0, 8000, weight=0.2),
              AudioMeta(str(tmp_path / "trunc.wav"), 5.0, 8000, weight=0.2),
              AudioMeta(str(tmp_path / "short.wav"), 0.1, 8000)]  # too short per the manifest itself
    ds = SegmentDataset(metas, _cfg(), seed=0)
    assert ds.skipped_short == 1 and len(ds.metas) == 4
    batch = _batches(make_loader(ds, 8), 1)[0]
    assert batch["wav"].shape == (8, 1, 4000)
    assert batch["skipped"] > 0 and set(batch["bad_paths"]) <= {str(tmp_path / "corrupt.wav"), str(tmp_path / "trunc.wav")}
    with pytest.raises(ManifestError, match="no file in the manifest lasts at least 0.25s"):
        SegmentDataset(metas[-1:], _cfg(), seed=0)
    only_bad = SegmentDataset(metas[2:3], _cfg(max_retries=3), seed=0)
    with pytest.raises(WavecraftError, match="3 consecutive unusable files"):
        only_bad[0]


def test_short_file_is_padded_and_length_reported(tmp_path):
    soundfile.write(str(tmp_path / "a.wav"), np.full(3000, 0.5, np.float32), 8000)
    ds = SegmentDataset([AudioMeta(str(tmp_path / "a.wav"), 0.375, 8000)], _cfg(), seed=0)
    item = ds[0]
    assert item["length"] == 3000 and item["wav"][0, 3000:].abs().sum() == 0


def test_broken_metadata_is_counted_not_fatal(tmp_path, toy):
    metas = read_manifest(toy)[:1]
    info_path = tmp_path / "broken.json"
    info_path.write_text("[1, 2]")
    metas[0].info_path = str(info_path)
    item = SegmentDataset(metas, _cfg(), seed=0)[0]
    assert item["caption"] is None and item["bad_metadata"] == 1


def test_audiogen_mix_joins_captions(toy):
    ds = SegmentDataset.from_manifest(toy, _cfg(mix_p=1.0), seed=0)
    captions = [ds[i]["caption"] for i in range(6)]
    assert all(", " in c for c in captions)


def test_mix_at_snr():
    torch.manual_seed(0)
    a, b = 0.1 * torch.randn(1, 8000), torch.randn(1, 8000)
    mixed = mix_at_snr(a, b, 10.0)
    noise = mixed - a
    snr = 10 * torch.log10(a.pow(2).mean() / noise.pow(2).mean())
    assert snr.item() == pytest.approx(10.0, abs=0.01)
