"""pitcher_offset.py: a per-row offset from a few labelled throws of a new pitcher."""

import json
from pathlib import Path
import sys

import numpy as np
from pitch_predictor.kinect import block_to_row_col, row_col_to_block
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `training` runs from the repo root; it is not installed

from training import pitcher_offset  # noqa: E402


def one_row_low_pitcher(throws_per_block: int = 10):
    """Return probabilities and labels of a model that names the block below, when there is one."""
    labels = np.repeat(np.arange(9), throws_per_block)
    logits = np.zeros((len(labels), 9))
    for i, label in enumerate(labels):
        logits[i, label] = 6.0
        row, col = block_to_row_col(label + 1)
        if row < 2:
            logits[i, row_col_to_block(row + 1, col) - 1] = 7.0
    probs = np.exp(pitcher_offset.log_softmax(logits))
    return probs, labels


def test_the_offset_undoes_a_one_row_bias_from_one_throw_per_block():
    probs, labels = one_row_low_pitcher()
    assert (probs.argmax(1) == labels).mean() == pytest.approx(1 / 3)  # only the bottom row
    scored = pitcher_offset.score_fold(probs, labels, shots=1, l2=0.0, draws=5,
                                       rng=np.random.default_rng(0))
    assert scored['plain'] == pytest.approx(1 / 3)
    assert scored['corrected'] == 1.0
    assert scored['scored_throws'] == 81
    offset = pitcher_offset.fit_row_offset(np.log(probs), labels, l2=0.0)
    assert offset[1] == 0.0 and offset[0] > 1.0 > -1.0 > offset[2]  # top up, bottom down


def test_a_right_model_keeps_its_predictions_and_a_strong_pull_keeps_the_offset_at_zero():
    labels = np.repeat(np.arange(9), 4)
    probs = np.exp(pitcher_offset.log_softmax(np.eye(9)[labels] * 5.0))
    scored = pitcher_offset.score_fold(probs, labels, shots=1, l2=0.5, draws=3,
                                       rng=np.random.default_rng(1))
    assert scored['plain'] == scored['corrected'] == 1.0
    biased, labels = one_row_low_pitcher()
    stiff = pitcher_offset.fit_row_offset(np.log(biased), labels, l2=1e6)
    assert not stiff.any()


def test_too_few_throws_for_the_calibration_are_refused():
    labels = np.repeat(np.arange(9), 2)
    with pytest.raises(ValueError, match='block 1: 2 throws'):
        pitcher_offset.draw_shots(labels, 2, np.random.default_rng(0))


def test_the_command_scores_the_shipped_model_on_a_pitcher_it_never_saw(
        tiny_cache, tmp_path, capsys):
    from pitch_predictor.shipped_model import shipped_model_path
    out = tmp_path / 'offset.json'
    model = str(shipped_model_path('skeleton_gru_fast.pt'))
    assert pitcher_offset.main(['--checkpoint', model, '--data',
                                str(tiny_cache), '--shots', '1', '--l2', '0,2',
                                '--draws', '3', '--out', str(out)]) == 0
    report = json.loads(out.read_text())
    assert [row['l2'] for row in report['rows']] == [0.0, 2.0]
    for row in report['rows']:
        assert row['calibration_throws'] == 9 and row['draws'] == 3
        (fold,) = row['folds']  # the tiny cache has one pitcher
        assert fold['scored_throws'] == 27  # 4 a block, 1 of each kept for calibration
        assert 0.0 <= fold['plain'] <= 1.0 and 0.0 <= fold['corrected'] <= 1.0
    assert '| 9 (1 per block) | 0 |' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        pitcher_offset.main(['--runs', str(tmp_path), '--checkpoint', 'x.pt'])
    with pytest.raises(SystemExit):  # 4 throws a block cannot keep 4 for calibration
        pitcher_offset.main(['--checkpoint', model, '--data',
                             str(tiny_cache), '--shots', '4'])


def test_fit_prints_node_parameters_the_node_accepts(tiny_cache, tmp_path, capsys):
    from pitch_predictor.runtime.node_params import check_value, parse_override
    out = tmp_path / 'fit.json'
    assert pitcher_offset.main(['--fit', '--data', str(tiny_cache), '--out', str(out)]) == 0
    fitted = json.loads(out.read_text())
    assert fitted['throws'] == 36 and fitted['blocks'] == list(range(1, 10))
    assert fitted['checkpoint'].endswith('skeleton_gru_fast.pt')  # the node's default
    assert fitted['accuracy_after_on_the_same_throws'] >= fitted['accuracy_before']
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()
             if line.strip().startswith('pitcher_row_offset_')]
    assert len(lines) == 2
    for line in lines:
        name, value = parse_override(line)
        assert check_value(name, value) == fitted[name]
    with pytest.raises(SystemExit):  # no such pitcher in the cache
        pitcher_offset.main(['--fit', '--data', str(tiny_cache), '--participant', 'P9'])
    with pytest.raises(SystemExit):  # --fit takes one weight
        pitcher_offset.main(['--fit', '--data', str(tiny_cache), '--l2', '0,1'])


def test_fit_needs_throws_at_more_than_one_block():
    probs = np.full((3, 9), 1 / 9)
    with pytest.raises(ValueError, match='several blocks'):
        pitcher_offset.fit_pitcher(probs, np.array([4, 4, 4]), 0.0)
    fitted = pitcher_offset.fit_pitcher(*one_row_low_pitcher(1), l2=0.0)
    assert fitted['accuracy_before'] == pytest.approx(1 / 3)
    assert fitted['accuracy_after_on_the_same_throws'] == 1.0
    assert fitted['pitcher_row_offset_top'] > 1.0 > -1.0 > fitted['pitcher_row_offset_bottom']
