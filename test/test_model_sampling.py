"""Table II sampling schemes: test clips written out by hand, training sampler support."""

import numpy as np
from pitch_predictor.models.sampling import clip_length, test_clip_indices, train_clip_indices
import pytest

# Table II, test columns, written out frame by frame.
EXPECTED_TEST_CLIPS = {
    1: [list(range(0, 40, 2)), list(range(1, 40, 2))],
    2: [[s + 4 * k for k in range(10)] for s in range(4)],
    3: [[s + 5 * k for k in range(8)] for s in range(5)],
    4: [[s + 8 * k for k in range(5)] for s in range(8)],
    5: [[s + 4 * k for k in range(10)] for s in range(4)],
    6: [list(range(s, s + 10)) for s in (0, 10, 20, 30)],
    7: [list(range(s, s + 20, 2)) for s in (0, 1, 20, 21)],
}
# Table II, training columns: (allowed first frames, step, length).
TRAIN_SUPPORT = {
    1: ({0, 1}, 2, 20),
    2: ({0, 1, 2, 3}, 4, 10),
    3: ({0, 1, 2, 3, 4}, 5, 8),
    4: (set(range(8)), 8, 5),
    6: (set(range(30)), 1, 10),
    7: (set(range(20)), 2, 10),
}


@pytest.mark.parametrize('method', sorted(EXPECTED_TEST_CLIPS))
def test_test_clips_match_table_two(method):
    clips = test_clip_indices(method)
    assert [c.tolist() for c in clips] == EXPECTED_TEST_CLIPS[method]
    assert all(c.max() <= 39 for c in clips)
    assert clip_length(method) == len(EXPECTED_TEST_CLIPS[method][0])


@pytest.mark.parametrize('method', sorted(TRAIN_SUPPORT))
def test_training_sampler_support(method):
    firsts, step, length = TRAIN_SUPPORT[method]
    rng = np.random.default_rng(method)
    seen = set()
    for _ in range(600):
        clip = train_clip_indices(method, rng)
        assert clip.dtype.kind == 'i' and len(clip) == length
        assert clip[0] in firsts and clip[-1] <= 39
        assert set(np.diff(clip).tolist()) == {step}
        seen.add(int(clip[0]))
    assert seen == firsts


def test_method_five_jitters_each_gap_and_stays_in_the_window():
    rng = np.random.default_rng(0)
    firsts, gaps, lasts = set(), set(), set()
    gap_patterns = set()
    for _ in range(3000):
        clip = train_clip_indices(5, rng)
        assert len(clip) == 10
        assert 0 <= clip[0] <= 3 and clip[-1] <= 39
        diffs = np.diff(clip)
        assert set(diffs.tolist()) <= {3, 4, 5}
        firsts.add(int(clip[0]))
        gaps.update(diffs.tolist())
        lasts.add(int(clip[-1]))
        gap_patterns.add(tuple(diffs.tolist()))
    assert firsts == {0, 1, 2, 3}
    assert gaps == {3, 4, 5}
    # What 3000 random draws cover (statistical): the lowest possible last frame is 27.
    assert 39 in lasts and min(lasts) <= 31  # clips reach the window end, and fall short
    assert len(gap_patterns) > 100  # gaps drawn independently, not one fixed step


def test_same_seed_same_clips():
    a = [train_clip_indices(5, np.random.default_rng(7)).tolist() for _ in range(2)]
    assert a[0] == a[1]


def test_unknown_method_and_short_window():
    with pytest.raises(ValueError, match='unknown sampling method'):
        train_clip_indices(8, np.random.default_rng(0))
    with pytest.raises(ValueError, match='unknown sampling method'):
        test_clip_indices(0)
    with pytest.raises(ValueError, match='window'):
        test_clip_indices(1, window=30)
    with pytest.raises(ValueError, match='window'):
        train_clip_indices(5, np.random.default_rng(0), window=20)
