"""Shared fixtures: tiny random transformers EnCodec checkpoints of the three released shapes."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

# The suite runs tiny tensors on a small shared machine: one intra-op thread avoids OpenMP
# hand-off costs that make a 4-channel convolution take tens of milliseconds when cores are busy.
torch.set_num_threads(1)

# transformers EncodecConfig kwargs: the released structures (ratios, causality, norms, chunking,
# codebook sizes) with narrow layers so that the parity tests run in seconds.
HF_CODEC_SHAPES: dict[str, dict] = {
    "24khz": dict(num_filters=4, hidden_size=16, codebook_size=1024,
                  target_bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0]),
    "32khz": dict(sampling_rate=32000, num_filters=4, hidden_size=16, codebook_size=2048,
                  upsampling_ratios=[8, 5, 4, 4], use_causal_conv=False, use_conv_shortcut=False,
                  pad_mode="constant", target_bandwidths=[2.2]),
    "48khz": dict(sampling_rate=48000, audio_channels=2, num_filters=4, hidden_size=16, codebook_size=1024,
                  use_causal_conv=False, norm_type="time_group_norm", normalize=True, chunk_length_s=1.0,
                  overlap=0.01, target_bandwidths=[3.0, 6.0, 12.0, 24.0]),
}


def make_hf_encodec(shape: str, seed: int = 0):
    """A randomly initialised transformers EncodecModel (codebooks randomised too: transformers
    initialises them to zeros, which would make every code 0)."""
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(seed)
    model = EncodecModel(EncodecConfig(**HF_CODEC_SHAPES[shape])).eval()
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    return model


@pytest.fixture(scope="session")
def hf_codec_folder(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """shape name -> folder written by EncodecModel.save_pretrained (built once per session)."""
    made: dict[str, Path] = {}

    def get(shape: str) -> Path:
        if shape not in made:
            folder = tmp_path_factory.mktemp(f"hf_encodec_{shape}")
            make_hf_encodec(shape).save_pretrained(folder)
            made[shape] = folder
        return made[shape]

    return get
