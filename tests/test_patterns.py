"""Codebook patterns: exact layouts for K=3, T=4, round trips, and the logits shift."""
import pytest
import torch

from wavecraft.lm.patterns import make_pattern

K, T, E = 3, 4, -9  # E: the special token in these tables
# codes[k, t] = 10 * (k + 1) + t, so every entry names its codebook and time step
CODES = torch.tensor([[10, 11, 12, 13], [20, 21, 22, 23], [30, 31, 32, 33]]).unsqueeze(0)

LAYOUTS = {
    "parallel": [
        [E, 10, 11, 12, 13],
        [E, 20, 21, 22, 23],
        [E, 30, 31, 32, 33],
    ],
    "delay": [  # S = T + max_delay + 1; codebook k at step s holds time s - k - 1
        [E, 10, 11, 12, 13, E, E],
        [E, E, 20, 21, 22, 23, E],
        [E, E, E, 30, 31, 32, 33],
    ],
    "unroll": [  # one codebook per step, time-major
        [E, 10, E, E, 11, E, E, 12, E, E, 13, E, E],
        [E, E, 20, E, E, 21, E, E, 22, E, E, 23, E],
        [E, E, E, 30, E, E, 31, E, E, 32, E, E, 33],
    ],
    "coarse_first": [  # codebook 0 for all times, then the others in parallel
        [E, 10, 11, 12, 13, E, E, E, E],
        [E, E, E, E, E, 20, 21, 22, 23],
        [E, E, E, E, E, 30, 31, 32, 33],
    ],
}


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_exact_layout_and_round_trip(kind):
    pattern = make_pattern(kind, K, T)
    seq, mask = pattern.build(CODES, E)
    expected = torch.tensor(LAYOUTS[kind])
    assert seq[0].tolist() == expected.tolist()
    assert mask.tolist() == (expected != E).tolist()
    back, back_mask = pattern.revert(seq)
    assert torch.equal(back, CODES) and back_mask.all()


def test_delay_sequence_length_rule():
    for k, t in [(4, 10), (4, 1), (8, 7), (1, 5)]:
        assert make_pattern("delay", k, t).num_steps == t + (k - 1) + 1


def test_custom_delays_interleaved_stereo():
    # Stereo MusicGen: (L0, R0, L1, R1) share delays pairwise.
    codes = torch.arange(8).view(1, 4, 2)
    seq, _ = make_pattern("delay", 4, 2, delays=[0, 0, 1, 1]).build(codes, E)
    assert seq[0].tolist() == [[E, 0, 1, E], [E, 2, 3, E], [E, E, 4, 5], [E, E, 6, 7]]


def test_revert_logits_reads_the_previous_step():
    # Logits at step s predict step s+1: reverting with shift=1 must pick, for (k, t), the
    # logits produced one step before the step holding (k, t).
    pattern = make_pattern("delay", K, T)
    S = pattern.num_steps
    step_ids = torch.arange(S).view(1, 1, S, 1).expand(2, K, S, 5).float()  # value = step index
    out, _ = pattern.revert(step_ids, shift=1)
    assert out.shape == (2, K, T, 5)
    for k in range(K):
        for t in range(T):
            assert out[0, k, t, 0].item() == t + k  # (k, t) sits at step t + k + 1


def test_first_step_with_time():
    delay = make_pattern("delay", 4, 10)
    assert delay.first_step_with_time(0) == 1
    assert delay.first_step_with_time(3) == 4  # codebook 0 reaches time 3 at step 4
    assert delay.first_step_with_time(10) == delay.num_steps
    assert make_pattern("unroll", 3, 5).first_step_with_time(2) == 1 + 2 * 3


def test_errors():
    with pytest.raises(ValueError, match="unknown pattern"):
        make_pattern("zigzag", 2, 2)
    with pytest.raises(ValueError, match="needs 3 non-negative delays"):
        make_pattern("delay", 3, 2, delays=[0, 1])
    with pytest.raises(ValueError, match="pattern is for K=3, T=4"):
        make_pattern("delay", K, T).build(torch.zeros(1, 3, 5, dtype=torch.long), E)
