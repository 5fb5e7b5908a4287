"""Tiny randomly initialised MusicGen checkpoints, written offline (for tests, demos and docs).

`tiny_hf_musicgen(folder)` builds a `transformers` MusicGen (T5 text encoder, EnCodec, decoder) with
random weights and saves it with `save_pretrained`, plus a T5 tokenizer trained on the spot with
sentencepiece: a real Hugging Face checkpoint in every respect except size. Nothing is downloaded.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

_SENTENCES = [
    "lofi beat with warm piano", "heavy rock drums and loud guitars", "calm ambient pad with soft strings",
    "happy pop song with synth bass", "jazz trio with upright bass and brushes", "dog barking in the rain",
    "footsteps on gravel", "orchestral film score with brass", "electronic dance music with big kick",
]


def tiny_t5_tokenizer(folder: str | Path, vocab_size: int = 40) -> None:
    """Train a small sentencepiece unigram model and save it as a T5 tokenizer in `folder`."""
    import sentencepiece as spm
    from transformers import T5Tokenizer

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_SENTENCES * 10), model_writer=buf, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(str(folder))


def tiny_hf_config(stereo: bool = False, melody: bool = False, dim: int = 32, layers: int = 2, card: int = 64,
                   sample_rate: int = 400, text_dim: int = 24):
    """A transformers MusicgenConfig (or MusicgenMelodyConfig) with tiny sizes; the codec runs at
    sample_rate / 8 frames per second (50 Hz by default, like the real one)."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    bits = max(1, (card - 1).bit_length())
    frame_rate = sample_rate // 8
    text = T5Config(vocab_size=40, d_model=text_dim, d_kv=8, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0)
    audio = EncodecConfig(
        sampling_rate=sample_rate, upsampling_ratios=[4, 2], hidden_size=8, num_filters=4, codebook_size=card,
        target_bandwidths=[4 * frame_rate * bits / 1000], num_lstm_layers=1, num_residual_layers=1,
    )
    decoder_kwargs = dict(
        vocab_size=card, hidden_size=dim, num_hidden_layers=layers, ffn_dim=2 * dim, num_attention_heads=4,
        num_codebooks=8 if stereo else 4, audio_channels=2 if stereo else 1, pad_token_id=card, bos_token_id=card,
        decoder_start_token_id=card, dropout=0.0,
    )
    if melody:
        from transformers import MusicgenMelodyConfig, MusicgenMelodyDecoderConfig

        return MusicgenMelodyConfig(text_encoder=text, audio_encoder=audio,
                                    decoder=MusicgenMelodyDecoderConfig(**decoder_kwargs), chroma_length=12)
    return MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=MusicgenDecoderConfig(**decoder_kwargs))


def tiny_hf_musicgen(folder: str | Path, stereo: bool = False, melody: bool = False, seed: int = 0,
                     scale: float = 8.0, **sizes: int):
    """Build, save (with tokenizer) and return a random transformers MusicGen model.

    Decoder weights are scaled by `scale` so that logits are far from uniform and greedy decoding
    picks varied tokens (a stronger parity check than near-zero logits).
    """
    from transformers import MusicgenForConditionalGeneration
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the special token id = card warnings are expected
    hf_logging.disable_progress_bar()
    try:
        torch.manual_seed(seed)
        config = tiny_hf_config(stereo=stereo, melody=melody, **sizes)
        if melody:
            from transformers import MusicgenMelodyForConditionalGeneration

            model = MusicgenMelodyForConditionalGeneration(config).eval()
        else:
            model = MusicgenForConditionalGeneration(config).eval()
        with torch.no_grad():
            for name, p in model.decoder.named_parameters():
                if "layer_norm" not in name:
                    p.mul_(scale)
        model.generation_config.pad_token_id = model.config.decoder.pad_token_id
        model.generation_config.decoder_start_token_id = model.config.decoder.decoder_start_token_id
        folder = Path(folder)
        model.save_pretrained(str(folder))
        tiny_t5_tokenizer(folder)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return model
