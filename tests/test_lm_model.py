"""The LM and its transformer: cached decoding equals a full pass, conditions behave as documented."""
import pytest
import torch

from wavecraft.conditioners.base import ConditionTensors
from wavecraft.lm import Conditions, LMConfig, LMModel
from wavecraft.lm.transformer import CrossAttention, sin_embedding


def tiny(**kw):
    torch.manual_seed(0)
    cfg = LMConfig(n_q=3, card=16, dim=32, num_heads=4, num_layers=2, ffn_dim=64, **kw)
    return LMModel(cfg).eval()


def conds(batch=2, cross_mask=None, prefix_mask=None):
    g = torch.Generator().manual_seed(1)
    cm = torch.ones(batch, 5, dtype=torch.bool) if cross_mask is None else cross_mask
    pm = torch.ones(batch, 4, dtype=torch.bool) if prefix_mask is None else prefix_mask
    return Conditions(
        ConditionTensors(torch.randn(batch, 5, 32, generator=g) * cm[..., None], cm),
        ConditionTensors(torch.randn(batch, 4, 32, generator=g) * pm[..., None], pm),
    )


def decode_all(lm, seq, c, first=3):
    state = lm.start_decoding(c, seq.shape[0], seq.shape[-1])
    outs = [lm.decode(state, seq[:, :, :first])]
    for s in range(first, seq.shape[-1]):
        outs.append(lm.decode(state, seq[:, :, s:s + 1]))
    return torch.stack(outs, dim=2), state


@pytest.mark.parametrize("positional", ["sin", "rope", "sin_rope"])
@pytest.mark.parametrize("masking", [True, False])
def test_cached_decoding_matches_full_forward(positional, masking):
    lm = tiny(positional=positional, cross_masking=masking, prefix_masking=masking)
    seq = torch.randint(0, 17, (2, 3, 8))
    c = conds(cross_mask=torch.tensor([[1, 1, 1, 0, 0], [1] * 5]).bool(),
              prefix_mask=torch.tensor([[1, 1, 0, 0], [1] * 4]).bool())
    full = lm(seq, c)  # [B, K, S, card]
    inc, _ = decode_all(lm, seq, c)
    assert torch.allclose(inc, full[:, :, 2:], atol=1e-5)


def test_kv_cache_is_written_in_place():
    lm = tiny()
    seq = torch.randint(0, 17, (2, 3, 6))
    state = lm.start_decoding(conds(), 2, 6)
    buffers = [k.data_ptr() for k in state.cache.keys]
    lm.decode(state, seq[:, :, :1])
    for s in range(1, 6):
        lm.decode(state, seq[:, :, s:s + 1])
    assert [k.data_ptr() for k in state.cache.keys] == buffers
    assert state.pos == 4 + 6  # prefix + steps


def test_cross_attention_keys_values_projected_once(monkeypatch):
    lm = tiny()
    calls = []
    original = CrossAttention.project_kv
    monkeypatch.setattr(CrossAttention, "project_kv", lambda self, c: calls.append(1) or original(self, c))
    decode_all(lm, torch.randint(0, 17, (2, 3, 7)), conds())
    assert len(calls) == lm.cfg.num_layers  # once per layer for the whole decode, not per step


def test_null_cross_condition_contributes_nothing():
    # A fully masked row (the CFG null condition) must give exactly the logits of no cross-attention.
    lm = tiny()
    seq = torch.randint(0, 17, (2, 3, 6))
    null = Conditions(cross=ConditionTensors(torch.zeros(2, 5, 32), torch.zeros(2, 5, dtype=torch.bool)))
    with_null = lm(seq, null)
    without = lm(seq, Conditions())
    assert torch.equal(with_null, without)
    assert torch.isfinite(with_null).all()


def test_cross_masking_hides_padded_positions():
    lm = tiny(cross_masking=True)
    seq = torch.randint(0, 17, (1, 3, 6))
    mask = torch.tensor([[1, 1, 1, 0, 0]]).bool()
    emb = torch.randn(1, 5, 32)
    a = lm(seq, Conditions(cross=ConditionTensors(emb, mask)))
    b = lm(seq, Conditions(cross=ConditionTensors(emb[:, :3], mask[:, :3])))
    assert torch.allclose(a, b, atol=1e-6)  # the two padded positions change nothing
    audiocraft = tiny(cross_masking=False)
    c = audiocraft(seq, Conditions(cross=ConditionTensors(emb * mask[..., None], mask)))
    d = audiocraft(seq, Conditions(cross=ConditionTensors(emb[:, :3], mask[:, :3])))
    assert not torch.allclose(c, d, atol=1e-4)  # zero vectors are attended (they dilute attention)


def test_sum_condition_is_added_to_every_step():
    lm = tiny()
    seq = torch.randint(0, 17, (2, 3, 5))
    bias = torch.randn(2, 1, 32)
    out = lm(seq, Conditions(sum=bias))
    x = lm.embed(seq) + bias
    ref = lm.logits(lm.transformer(x))
    assert torch.allclose(out, ref, atol=1e-6)
    inc, _ = decode_all(lm, seq, Conditions(sum=bias), first=1)
    assert torch.allclose(inc, out, atol=1e-5)


def test_embeddings_are_summed_per_codebook_tables():
    lm = tiny()
    tokens = torch.tensor([[[1], [16], [3]]])  # codebook 1 holds the special token (id = card)
    w = lm.emb.weight
    expected = w[1] + w[17 + 16] + w[2 * 17 + 3]
    assert torch.allclose(lm.embed(tokens)[0, 0], expected)


def test_sinusoid_matches_the_tensor2tensor_formula():
    emb = sin_embedding(7, 8)
    pos, i = 5, 2
    freq = 10000 ** (-i / 3)  # half = 4, exponent i / (half - 1)
    assert emb[pos, i].item() == pytest.approx(torch.cos(torch.tensor(pos * freq)).item(), abs=1e-6)
    assert emb[pos, 4 + i].item() == pytest.approx(torch.sin(torch.tensor(pos * freq)).item(), abs=1e-6)


def test_compute_predictions_aligns_logits_with_codes():
    lm = tiny()
    codes = torch.randint(0, 16, (2, 3, 5))
    logits, mask = lm.compute_predictions(codes, conds())
    assert logits.shape == (2, 3, 5, 16) and mask.all()
    # (k=1, t=2) sits at step t + k + 1 = 4 in the delay pattern, predicted by step 3's output
    seq, _ = lm.cfg.make_pattern(5).build(codes, lm.cfg.special_token)
    full = lm(seq, conds())
    assert torch.equal(logits[:, 1, 2], full[:, 1, 3])


def test_config_round_trip_and_validation():
    cfg = LMConfig(n_q=8, delays=(0, 0, 1, 1, 2, 2, 3, 3), positional="rope")
    assert LMConfig.from_json(cfg.to_json()) == cfg
    from wavecraft.errors import ConfigError

    with pytest.raises(ConfigError, match="pattern must be one of"):
        LMConfig.from_dict({"pattern": "spiral"})
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        LMConfig.from_dict({"dim": 30, "num_heads": 4})


def test_training_step_reaches_every_weight():
    lm = tiny(dropout=0.1).train()
    codes = torch.randint(0, 16, (2, 3, 5))
    logits, mask = lm.compute_predictions(codes, conds())
    loss = torch.nn.functional.cross_entropy(logits[:, mask].flatten(0, -2), codes[:, mask].flatten())
    loss.backward()
    missing = [n for n, p in lm.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("positional", ["sin", "rope"])
def test_build_lm_takes_the_checkpoint_tensors_and_matches_a_plain_load(positional):
    """Loaders build the LM on the meta device and assign the checkpoint's tensors: no second copy
    of the weights, yet the unsaved buffers (codebook offsets, rotary frequencies) are right."""
    from wavecraft.models.loaders.native import build_lm

    reference = tiny(positional=positional)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    built = build_lm(reference.cfg, state, "test").eval()
    assert built.head.weight.data_ptr() == state["head.weight"].data_ptr()  # assigned, not copied
    assert all(not t.is_meta for t in list(built.parameters()) + list(built.buffers()))
    seq = torch.randint(0, 16, (2, 3, 6))
    with torch.no_grad():
        assert torch.equal(built(seq, conds()), reference(seq, conds()))
    with pytest.raises(Exception, match="missing"):
        build_lm(reference.cfg, {k: v for k, v in state.items() if k != "head.weight"}, "test")


def test_a_loaded_model_owns_its_weights(tmp_path):
    """The loaders copy tensors out of the memory-mapped safetensors file: rewriting the file in
    place (re-saving a checkpoint) leaves a loaded model untouched."""
    from wavecraft.models.musicgen import MusicGen
    from wavecraft.models.tiny import tiny_hf_musicgen

    folder = tmp_path / "hf"
    tiny_hf_musicgen(folder)
    model = MusicGen.get_pretrained(folder, device="cpu")
    before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    weights = next(folder.glob("*.safetensors"))
    size = weights.stat().st_size
    with open(weights, "r+b") as fh:  # same inode, new bytes after the header
        fh.seek(size // 4)
        fh.write(b"\x7f" * (size - size // 4))
    after = model.lm.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
