"""Streaming state of each codec layer (see codec/streaming.py): `step(x)` consumes new input and
emits the outputs no future input can change, `flush()` applies the right padding at the end of
the stream and emits the rest.

  * convolution: keeps the input samples its next windows still need; left padding is applied
    once enough input has arrived to build it exactly as the one-pass code does (reflection needs
    a few samples), right padding only at flush, when the total length is known;
  * transposed convolution: keeps the partial sums of the overlapping tail;
  * LSTM: keeps (h, c);
  * residual block: with an identity skip, streamed as its first convolution (the window's own
    samples are the skip; the fused C kernel on CPU); otherwise keeps the skip samples the block
    has not yet caught up with.
"""
from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

from ..errors import WavecraftError
from ..kernels import resblock
from . import layout
from .layout import empty_along_time, join
from .seanet import ELU, LSTMBlock, NormConv1d, NormConvTranspose1d, ResBlock, extra_padding

Maybe = Tensor | None


def _cat(a: Maybe, b: Maybe) -> Maybe:
    if a is None or a.shape[-1] == 0:
        return b
    if b is None or b.shape[-1] == 0:
        return a
    return join([a, b])


def _tail(a: Maybe, b: Tensor, n: int) -> Tensor:
    """The last n samples of a followed by b, as a small tensor of its own (one copy: only the
    samples kept are moved)."""
    if n <= 0:
        return b[..., :0]
    if a is None or a.shape[-1] == 0 or b.shape[-1] >= n:
        return _own(b[..., -n:])
    return join([a[..., -(n - b.shape[-1]) :], b])


def _own(x: Tensor) -> Tensor:
    """A kept tail as its own small tensor: a view would keep the whole piece it came from alive,
    so memory would grow with the piece size times the number of layers."""
    return x.clone() if x.numel() < x.untyped_storage().nbytes() // x.element_size() else x


class _State(Protocol):
    def step(self, x: Maybe) -> Maybe: ...
    def flush(self) -> Maybe: ...


class _Pointwise:
    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def step(self, x: Maybe) -> Maybe:
        return None if x is None else self.module(x)

    def flush(self) -> Maybe:
        return None


class _ConvState:
    """A convolution's state; `activation` (an ELU just before it) is applied to each new piece as
    it is written behind the kept samples, which saves a copy of every piece."""

    def __init__(self, conv: NormConv1d, activation: ELU | None = None) -> None:
        if conv.norm is not None:
            raise WavecraftError("streaming is not possible with group-norm convolutions (EnCodec 48 kHz)")
        if conv.pad_mode == "circular":
            raise WavecraftError("streaming is not possible with circular padding")
        self.conv, self.activation = conv, activation
        k, s = conv.effective_kernel, conv.stride
        self.k, self.s = k, s
        # Reflection: start once the left pad can be built, and late enough that the one-pass
        # code's special case for inputs shorter than the pad (zero extension before reflecting)
        # cannot apply. Other modes pad the same whatever the length: start at once.
        self.need = max(conv.pad_left, conv.pad_right + s - 1) + 1 if conv.pad_mode == "reflect" else 1
        self.keep_hist = conv.pad_right + s + 1  # real samples the right reflection may need
        self.pending: Maybe = None  # input before the start
        self.buf: Maybe = None  # padded-coordinate samples from index self.pos on
        self.hist: Maybe = None
        self.pos = 0
        self.next_out = 0
        self.n_in = 0

    def _left_pad(self, x: Tensor) -> Tensor:
        p = self.conv.pad_left
        if p == 0:
            return x[..., :0]
        mode = self.conv.pad_mode
        if mode == "reflect":
            return x[..., 1 : p + 1].flip(-1)
        if mode == "replicate":
            return x[..., :1].expand(*x.shape[:-1], p)
        return x.new_zeros(*x.shape[:-1], p)

    def _right_pad(self, p: int) -> Tensor:
        h = self.hist
        assert h is not None
        mode = self.conv.pad_mode
        if p == 0:
            return h[..., :0]
        if mode == "reflect":
            return h[..., -p - 1 : -1].flip(-1)
        if mode == "replicate":
            return h[..., -1:].expand(*h.shape[:-1], p)
        return h.new_zeros(*h.shape[:-1], p)

    def _run(self) -> Maybe:
        """Every complete window in the buffer, then drop what no later window needs."""
        assert self.buf is not None
        end = self.pos + self.buf.shape[-1]
        n = (end - self.k) // self.s + 1 - self.next_out if end >= self.k else 0
        if n <= 0:
            return None
        start = self.next_out * self.s - self.pos
        y = self._apply(self.buf[..., start : start + (n - 1) * self.s + self.k])
        self.next_out += n
        drop = self.next_out * self.s - self.pos
        self.buf = _own(self.buf[..., drop:])
        self.pos += drop
        return y

    def step(self, x: Maybe) -> Maybe:
        if x is None or x.shape[-1] == 0:
            return None
        self.n_in += x.shape[-1]
        started = self.buf is not None
        if started and (self.buf.shape[-1] or self.activation is not None):
            kept = self.buf.shape[-1]
            joined = empty_along_time(x, kept + x.shape[-1])
            joined[..., :kept] = self.buf
            if self.activation is not None:
                self.activation.into(x, joined[..., kept:])
            else:
                joined[..., kept:] = x
            self.buf, x = joined, joined[..., kept:]
        elif started:
            self.buf = x  # nothing kept (1x1 kernels): no copy at all
        elif self.activation is not None:
            x = self.activation(x)
        # Only the newest samples matter: joining the whole piece first would copy all of it.
        self.hist = _tail(self.hist, x, self.keep_hist)
        if not started:
            self.pending = _cat(self.pending, x)
            if self.n_in < self.need:
                return None
            self.buf = join([self._left_pad(self.pending), self.pending])
            self.pending = None
        return self._run()

    def _apply(self, window: Tensor) -> Tensor:
        """The layer on a padded window of complete inputs."""
        return self.conv.conv(window)

    def _whole(self, x: Tensor) -> Tensor:
        """The one-pass layer (a stream too short to start)."""
        return self.conv(x)

    def flush(self) -> Maybe:
        if self.buf is None:  # short stream: exactly the one-pass computation
            return None if self.pending is None else self._whole(self.pending)
        extra = extra_padding(self.n_in, self.k, self.s, self.conv.padding_total)
        self.buf = join([self.buf, self._right_pad(self.conv.pad_right + extra)])
        return self._run()


class _ConvTransposeState:
    def __init__(self, conv: NormConvTranspose1d) -> None:
        if conv.norm is not None:
            raise WavecraftError("streaming is not possible with group-norm convolutions (EnCodec 48 kHz)")
        self.conv = conv
        self.tail: Maybe = None  # partial sums (no bias) of the outputs the next frame also touches
        self.to_drop = conv.trim_left

    def _trim(self, y: Tensor) -> Maybe:
        if self.to_drop:
            cut = min(self.to_drop, y.shape[-1])
            y, self.to_drop = y[..., cut:], self.to_drop - cut
        return y

    def step(self, x: Maybe) -> Maybe:
        if x is None or x.shape[-1] == 0:
            return None
        done, tail = self.conv.piece(x, self.tail)
        self.tail = _own(tail)
        return self._trim(done)

    def flush(self) -> Maybe:
        if self.tail is None:
            return None
        keep = self.tail.shape[-1] - self.conv.trim_right
        return self._trim(self.tail[..., :keep] + self.conv.bias[:, None]) if keep > 0 else None


class _LSTMState:
    def __init__(self, block: LSTMBlock) -> None:
        self.block = block
        self.state: tuple[Tensor, Tensor] | None = None

    def step(self, x: Maybe) -> Maybe:
        if x is None or x.shape[-1] == 0:
            return None
        seq = x.permute(2, 0, 1)
        y, self.state = self.block.run(seq, self.state)
        return (y + seq).permute(1, 2, 0)

    def flush(self) -> Maybe:
        return None


class _ResBlockState:
    def __init__(self, block: ResBlock) -> None:
        self.shortcut = block.shortcut
        if isinstance(block.shortcut, NormConv1d) and block.shortcut.effective_kernel != 1:
            raise WavecraftError("streaming needs 1x1 shortcuts in residual blocks")
        self.chain = _make_chain(list(block.block))
        self.skip: list[Tensor] = []  # shortcut samples the block's output has not reached, in order

    def _add(self, y: Maybe) -> Maybe:
        """The skip added into y in place (y is the last convolution's fresh output), without
        joining the skip pieces first."""
        if y is None:
            return None
        done, n = 0, y.shape[-1]
        while done < n:
            part = self.skip[0]
            take = min(part.shape[-1], n - done)
            y[..., done : done + take].add_(part[..., :take])  # (`y[...] += p` also copies the slice onto itself)
            done += take
            if take == part.shape[-1]:
                self.skip.pop(0)
            else:
                self.skip[0] = _own(part[..., take:])
        return y

    def step(self, x: Maybe) -> Maybe:
        if x is None or x.shape[-1] == 0:
            return None
        self.skip.append(self.shortcut(x))
        return self._add(_chain_step(self.chain, x))

    def flush(self) -> Maybe:
        return self._add(_chain_flush(self.chain))


class _FusedResBlockState(_ConvState):
    """A residual block streamed as its first convolution's state: each padded window of raw
    input goes through the whole block at once (`ResBlock.on_padded`, the fused C kernel on CPU),
    the skip being the window's own samples, so nothing else is kept."""

    def __init__(self, block: ResBlock) -> None:
        super().__init__(block.block[1])
        self.block = block

    def step(self, x: Maybe) -> Maybe:
        weights = None if x is None else self.block._fused_weights(x)
        # Steady state (started, the kept samples being exactly the next window's first k - 1):
        # the kernel reads the kept samples and the new piece as one, so the piece is not copied.
        if (weights is None or x.shape[-1] == 0 or self.buf is None or self.next_out != self.pos
                or self.buf.shape[-1] != self.k - 1):
            return super().step(x)
        self.n_in += x.shape[-1]
        self.hist = _tail(self.hist, x, self.keep_hist)
        y = resblock()(layout.to_channels_last(x), *weights, self.conv.pad_left, head=self.buf)
        self.next_out += y.shape[-1]
        self.buf = _tail(self.buf, x, self.k - 1)
        self.pos = self.next_out
        return y

    def _apply(self, window: Tensor) -> Tensor:
        return self.block.on_padded(window)

    def _whole(self, x: Tensor) -> Tensor:
        return self.block(x)


def _make_state(module: nn.Module) -> _State:
    if isinstance(module, NormConv1d):
        return _ConvState(module)
    if isinstance(module, NormConvTranspose1d):
        return _ConvTransposeState(module)
    if isinstance(module, LSTMBlock):
        return _LSTMState(module)
    if isinstance(module, ResBlock):
        return _FusedResBlockState(module) if module.streams_fused() else _ResBlockState(module)
    return _Pointwise(module)


def _make_chain(modules: list[nn.Module]) -> list[_State]:
    """States for a sequence of layers; an ELU followed by a convolution becomes one state."""
    chain: list[_State] = []
    i = 0
    while i < len(modules):
        if isinstance(modules[i], ELU) and i + 1 < len(modules) and isinstance(modules[i + 1], NormConv1d):
            chain.append(_ConvState(modules[i + 1], activation=modules[i]))
            i += 2
            continue
        chain.append(_make_state(modules[i]))
        i += 1
    return chain


def _chain_step(chain: list[_State], x: Maybe) -> Maybe:
    for state in chain:
        x = state.step(x)
    return x


def _chain_flush(chain: list[_State]) -> Maybe:
    x: Maybe = None
    for state in chain:
        x = _cat(state.step(x), state.flush())
    return x
