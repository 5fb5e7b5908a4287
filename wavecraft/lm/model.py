"""The token language model: K summed embeddings -> transformer -> K output heads.

Shapes: codes [B, K, T] with K codebooks of `card` entries; the pattern turns them into steps
[B, K, S]; id `card` is the special "empty" token of the pattern (it has an embedding row but no
output logit). Conditions reach the model two ways (see `Conditions`): cross-attention over a
condition sequence, or a prefix of embeddings prepended to the token sequence.

The K embedding tables live in one `nn.Embedding` (row k*(card+1) + id) and the K heads in one
`nn.Linear(dim, K*card)`: one gather and one matmul per step instead of K each. Loaders convert
the per-codebook tables of audiocraft / transformers checkpoints to this layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..conditioners.base import ConditionTensors
from ..config import Config
from .patterns import PATTERN_KINDS, Pattern, make_pattern
from .lean_step import LeanStep
from .transformer import POSITIONAL_KINDS, CrossKV, KVCache, Transformer


@dataclass
class LMConfig(Config):
    n_q: int = 4  # codebooks per frame (K)
    card: int = 2048  # entries per codebook; the special token id is `card`
    dim: int = 1024
    num_heads: int = 16
    num_layers: int = 24
    ffn_dim: int = 4096
    cross_attention: bool = True
    bias_attn: bool = False
    bias_ff: bool = False
    norm_eps: float = 1e-5
    dropout: float = 0.0
    positional: str = "sin"  # sin | rope | sin_rope | none
    max_period: float = 10000.0
    pattern: str = "delay"  # parallel | delay | unroll | coarse_first
    delays: tuple[int, ...] | None = None  # delay pattern: per codebook (default 0..K-1)
    # Padded / null condition positions hold zero vectors. Masked (True) they are hidden from
    # attention; unmasked (False) they are attended like any position. transformers' MusicGen masks
    # the cross-attention source but not a prefix (MusicGen-melody); audiocraft masks neither.
    cross_masking: bool = True
    prefix_masking: bool = False

    def __post_init__(self) -> None:
        if self.pattern not in PATTERN_KINDS:
            raise ValueError(f"pattern must be one of {PATTERN_KINDS}, got {self.pattern!r}")
        if self.positional not in POSITIONAL_KINDS:
            raise ValueError(f"positional must be one of {POSITIONAL_KINDS}, got {self.positional!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        if self.delays is not None:
            self.delays = tuple(int(d) for d in self.delays)

    @property
    def special_token(self) -> int:
        return self.card

    def make_pattern(self, timesteps: int) -> Pattern:
        return make_pattern(self.pattern, self.n_q, timesteps, self.delays)


@dataclass
class Conditions:
    """Condition tensors for one batch, already projected to the LM width.

    cross: attended by every layer's cross-attention. prefix: prepended to the token embeddings
    (MusicGen-melody's chroma + text). sum: [B, 1, D] added to every token embedding (during
    training it may also be [B, S, D], one vector per step). Any may be None.
    """

    cross: ConditionTensors | None = None
    prefix: ConditionTensors | None = None
    sum: torch.Tensor | None = None

    @property
    def batch_size(self) -> int | None:
        for c in (self.cross, self.prefix):
            if c is not None:
                return c.batch_size
        return None if self.sum is None else self.sum.shape[0]

    def null(self) -> "Conditions":
        """Every row replaced by the null condition (what classifier-free guidance compares against)."""
        return Conditions(
            self.cross.repeat_null() if self.cross is not None else None,
            self.prefix.repeat_null() if self.prefix is not None else None,
            torch.zeros_like(self.sum) if self.sum is not None else None,
        )

    def cat(self, other: "Conditions") -> "Conditions":
        def join(a: ConditionTensors | None, b: ConditionTensors | None) -> ConditionTensors | None:
            if (a is None) != (b is None):
                raise ValueError("cannot batch conditions with and without the same attributes")
            return None if a is None else a.cat(b)  # type: ignore[union-attr]

        if (self.sum is None) != (other.sum is None):
            raise ValueError("cannot batch conditions with and without a sum term")
        total = None if self.sum is None else torch.cat([self.sum, other.sum], dim=0)  # type: ignore[list-item]
        return Conditions(join(self.cross, other.cross), join(self.prefix, other.prefix), total)


class DecodeState:
    """Everything one incremental decode keeps between steps: KV cache, cross K/V, masks, position."""

    def __init__(self, lm: "LMModel", conditions: Conditions, batch: int, max_steps: int) -> None:
        device, dtype = lm.device, lm.dtype
        prefix = conditions.prefix
        self.prefix = prefix.embeddings.to(device, dtype) if prefix is not None else None
        plen = 0 if prefix is None else prefix.embeddings.shape[1]
        self.cache: KVCache = lm.transformer.new_cache(batch, plen + max_steps, device, lm.kv_dtype or dtype)
        self.cross: CrossKV | None = None
        if conditions.cross is not None and lm.cfg.cross_attention:
            mask = conditions.cross.mask.to(device) if lm.cfg.cross_masking else None
            self.cross = lm.transformer.cross_kv(conditions.cross.embeddings.to(device, dtype), mask)
        self.sum = conditions.sum.to(device, dtype) if conditions.sum is not None else None
        if self.sum is not None and self.sum.shape[1] != 1:
            raise ValueError(f"a sum condition must be [B, 1, D] when decoding, got {tuple(self.sum.shape)}")
        self.key_mask = None
        if prefix is not None and lm.cfg.prefix_masking and not bool(prefix.mask.all()):
            self.key_mask = torch.ones(batch, plen + max_steps, dtype=torch.bool, device=device)
            self.key_mask[:, :plen] = prefix.mask.to(device)
        self.pos = 0
        self.lean: LeanStep | None = None  # built at the first single-position step (LMModel.decode)


class LMModel(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        K, card = cfg.n_q, cfg.card
        self.emb = nn.Embedding(K * (card + 1), cfg.dim)
        self.transformer = Transformer(
            cfg.dim, cfg.num_heads, cfg.num_layers, cfg.ffn_dim, cfg.cross_attention, cfg.bias_attn,
            cfg.bias_ff, cfg.norm_eps, cfg.dropout, cfg.positional, cfg.max_period,
        )
        self.out_norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, K * card, bias=False)
        self.register_buffer("emb_offsets", torch.empty(K, dtype=torch.long), persistent=False)
        self.init_fixed_buffers()
        self.quantization: str | None = None  # "int8" / "int4" once `lm.quantize.quantize_lm` ran
        # KV cache dtype (None: the model's). Attention reads the whole cache every step, a cost
        # that grows with the length; quantised models keep it in bfloat16 to halve it.
        self.kv_dtype: torch.dtype | None = None
        # Single-position decode steps through `LeanStep` (False: the plain layer-by-layer step),
        # and within it the whole step as one C call where the model allows (`FusedStep`).
        self.lean_decoding = True
        self.fused_decoding = True

    def init_fixed_buffers(self, device: torch.device | str | None = None) -> None:
        """(Re)compute the buffers that are not saved with the weights. A model built on the meta
        device (loaders: no random initialisation, weights assigned from the checkpoint) gets
        them here on the weights' device."""
        device = device if device is not None else self.emb_offsets.device
        K, card = self.cfg.n_q, self.cfg.card
        # Computed on CPU and moved: arithmetic on the meta device would import torch._dynamo.
        self.emb_offsets = (torch.arange(K, device="cpu") * (card + 1)).to(device)
        if self.transformer.rotary is not None:
            self.transformer.rotary.init_inv_freq(device)

    @property
    def device(self) -> torch.device:
        return self.out_norm.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The activation dtype (quantised linear layers keep this dtype at their boundaries)."""
        return self.out_norm.weight.dtype

    # -- building blocks ------------------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, K, T] (ids in [0, card]) -> summed embeddings [B, T, D]."""
        B, K, T = tokens.shape
        ids = (tokens + self.emb_offsets.view(1, K, 1)).transpose(1, 2).reshape(B * T, K)
        return F.embedding_bag(ids, self.emb.weight, mode="sum").view(B, T, -1)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [B, T, D] -> logits [B, K, T, card]."""
        B, T, _ = hidden.shape
        out = self.head(self.out_norm(hidden)).view(B, T, self.cfg.n_q, self.cfg.card)
        return out.permute(0, 2, 1, 3)

    # -- training / scoring -----------------------------------------------------------------------
    def forward(self, sequence: torch.Tensor, conditions: Conditions | None = None) -> torch.Tensor:
        """Pattern steps [B, K, S] -> logits [B, K, S, card] (logits at step s predict step s+1)."""
        conditions = conditions or Conditions()
        x = self.embed(sequence)
        if conditions.sum is not None:
            x = x + conditions.sum.to(x.dtype)
        B, S, _ = x.shape
        key_mask = None
        plen = 0
        if conditions.prefix is not None:
            prefix = conditions.prefix
            plen = prefix.embeddings.shape[1]
            x = torch.cat([prefix.embeddings.to(x.dtype), x], dim=1)
            if self.cfg.prefix_masking and not bool(prefix.mask.all()):
                key_mask = torch.cat([prefix.mask, torch.ones(B, S, dtype=torch.bool, device=x.device)], dim=1)
        cross = None
        if conditions.cross is not None and self.cfg.cross_attention:
            mask = conditions.cross.mask if self.cfg.cross_masking else None
            cross = self.transformer.cross_kv(conditions.cross.embeddings.to(x.dtype), mask)
        out = self.transformer(x, 0, None, cross, key_mask)
        return self.logits(out[:, plen:])

    def compute_predictions(
        self, codes: torch.Tensor, conditions: Conditions | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """codes [B, K, T] -> (logits [B, K, T, card] aligned with codes, valid mask [K, T]).

        The training loss is cross-entropy between these logits and `codes` where the mask is True.
        """
        pattern = self.cfg.make_pattern(codes.shape[-1])
        sequence, _ = pattern.build(codes, self.cfg.special_token)
        logits = self(sequence, conditions)
        return pattern.revert(logits, shift=1)

    # -- incremental decoding -------------------------------------------------------------------
    def start_decoding(self, conditions: Conditions, batch: int, max_steps: int) -> DecodeState:
        """Allocate the cache and project the conditions for a decode of up to `max_steps` steps."""
        return DecodeState(self, conditions, batch, max_steps)

    def decode(self, state: DecodeState, tokens: torch.Tensor) -> torch.Tensor:
        """Feed the next steps [B, K, n] and return the logits of the last one, [B, K, card]."""
        x = self.embed(tokens)
        if state.sum is not None:
            x = x + state.sum
        if state.pos == 0 and state.prefix is not None:
            x = torch.cat([state.prefix, x], dim=1)
        B = x.shape[0]
        if x.shape[1] == 1 and state.pos > 0 and self.lean_decoding and not self.training:
            if state.lean is None:
                mask = None if state.key_mask is None else state.key_mask[:, None, None, :]
                state.lean = LeanStep(self.transformer, state.cache, state.cross, mask, self.fused_decoding)
            last = state.lean(x[:, 0], state.pos)
        else:
            last = self.transformer(x, state.pos, state.cache, state.cross, state.key_mask)[:, -1]
        state.pos += x.shape[1]
        # Logits in float32 whatever the model dtype: guidance subtracts two of them.
        return self.head(self.out_norm(last)).view(B, self.cfg.n_q, self.cfg.card).float()

    def make_static(self, state: DecodeState) -> None:
        """Switch `state` to fixed-shape single-token steps (`decode_static`) from its current position."""
        state.cache.make_static(state.key_mask)

    def decode_static(self, state: DecodeState, tokens: torch.Tensor) -> torch.Tensor:
        """`decode` of one step [B, K, 1] with fixed shapes and a device-side position (for CUDA
        graphs). Advances the device position; the caller advances `state.pos` and the cache length."""
        x = self.embed(tokens)
        if state.sum is not None:
            x = x + state.sum
        out = self.transformer.step_static(x, state.cache, state.cross)
        B = out.shape[0]
        return self.head(self.out_norm(out[:, -1])).view(B, self.cfg.n_q, self.cfg.card).float()

    def num_parameters(self) -> int:
        """Weights of the model, counting quantised linear layers (whose weights are buffers) too."""
        quantized = sum(m.in_features * m.out_features for m in self.modules()
                        if hasattr(m, "qweight") and hasattr(m, "in_features"))
        return sum(p.numel() for p in self.parameters()) + quantized
