"""Evaluator scoring on a hand-made prediction list (expected numbers worked out by hand)."""

import csv
import json

import numpy as np
from pitch_predictor.evaluation.scoring import (
    format_report, latency_stats, ObservedPrediction, score, ScoringError, TrialTruth,
    truth_from_records, write_report)
import pytest

SECOND = 1_000_000_000


def _trial(i: int, block: int) -> TrialTruth:
    # Trial i covers stamps [10 s * i, 10 s * i + 3 s]; true start 1 s in.
    first = 10 * SECOND * i
    return TrialTruth(f't{i}', block, 'P1', first, first + 3 * SECOND, first + SECOND)


TRUTHS = [_trial(0, 1), _trial(1, 5), _trial(2, 9), _trial(3, 2), _trial(4, 2)]


def _pred(t: float, block: int, latency: float = 0.01) -> ObservedPrediction:
    probs = [0.0] * 9
    probs[block - 1] = 0.7
    return ObservedPrediction(int(t * SECOND), block, tuple(probs), latency, None)


PREDICTIONS = [
    _pred(1.0, 1, 0.010),    # t0: right
    _pred(11.5, 4, 0.020),   # t1: wrong (5 -> 4), started 0.5 s = 15 frames late
    _pred(12.0, 5, 0.500),   # t1 again: extra, ignored
    _pred(21.0, 9, 0.030),   # t2: right
    # t3: missed
    _pred(41.0, 3, 0.040),   # t4: wrong (2 -> 3)
    _pred(35.0, 2, 0.050),   # between t3 and t4: spurious
]


def test_accuracy_and_confusion_by_hand():
    report = score(PREDICTIONS, TRUTHS)
    assert report.trials == 5
    assert report.predicted == 4
    assert report.missed == 1
    assert report.extra == 1
    assert report.spurious == 1
    assert report.correct == 2
    assert report.accuracy == pytest.approx(2 / 5)
    assert report.accuracy_of_predicted == pytest.approx(2 / 4)
    expected = np.zeros((9, 9), int)
    expected[0, 0] = 1  # true 1 -> predicted 1
    expected[4, 3] = 1  # true 5 -> predicted 4
    expected[8, 8] = 1  # true 9 -> predicted 9
    expected[1, 2] = 1  # true 2 -> predicted 3
    np.testing.assert_array_equal(report.confusion, expected)
    by_id = {a.trial_id: a for a in report.actions}
    assert by_id['t3'].predicted_block is None and not by_id['t3'].correct
    assert by_id['t1'].start_error_frames == pytest.approx(15.0)
    assert by_id['t0'].start_error_frames == pytest.approx(0.0)
    # Latencies of the four counted predictions: 10, 20, 30, 40 ms (extra and spurious
    # ones are not counted). p50 = 25 ms, p95 = 30 + 0.85 * 10 = 38.5 ms (linear).
    stats = report.decision_latency
    assert stats.count == 4
    assert stats.p50_ms == pytest.approx(25.0)
    assert stats.p95_ms == pytest.approx(38.5)
    assert stats.max_ms == pytest.approx(40.0)
    assert report.delivery_latency is None


def test_latency_stats_ignores_unknown_values():
    stats = latency_stats([0.001, None, 0.003, float('nan')])
    assert stats.count == 2
    assert stats.p50_ms == pytest.approx(2.0)
    assert latency_stats([]) is None


def test_bad_block_is_refused():
    with pytest.raises(ScoringError, match='prediction 0'):
        score([ObservedPrediction(SECOND, 10)], TRUTHS)


def test_written_report_files(tmp_path):
    report = score(PREDICTIONS, TRUTHS, meta={'mode': 'offline'})
    paths = write_report(report, tmp_path, PREDICTIONS)
    summary = json.loads(paths['summary'].read_text())
    assert summary['accuracy'] == pytest.approx(0.4)
    assert summary['confusion_rows_true_cols_predicted'][4][3] == 1
    with paths['per_action_csv'].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r['trial_id'] for r in rows] == ['t0', 't1', 't2', 't3', 't4']
    assert rows[3]['predicted_block'] == ''
    assert paths['confusion_png'].read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert len(paths['predictions'].read_text().splitlines()) == len(PREDICTIONS)
    assert '| t1 | P1 | 5 | 4 | no |' in paths['per_action_md'].read_text()


def _aimed(i: int, block: int, intended: int) -> TrialTruth:
    first = 10 * SECOND * i
    return TrialTruth(f't{i}', block, 'P1', first, first + 3 * SECOND, first + SECOND,
                      intended_block=intended)


# Six throws, two of them off target: t1 aimed at 5 hit 6, t4 aimed at 2 hit 1.
AIMED = [_aimed(0, 1, 1), _aimed(1, 6, 5), _aimed(2, 9, 9), _aimed(3, 2, 2),
         _aimed(4, 1, 2), _aimed(5, 7, 7)]
AIMED_PREDICTIONS = [
    _pred(1.0, 1),    # t0 on target, right
    _pred(11.0, 5),   # t1 off target: the intended block (5), not the one hit (6)
    _pred(21.0, 8),   # t2 on target, wrong for both
    _pred(31.0, 2),   # t3 on target, right
    _pred(41.0, 1),   # t4 off target: the block hit (1), not the intended one (2)
    # t5: no prediction, wrong for both
]


def test_off_target_throws_are_scored_against_both_blocks():
    report = score(AIMED_PREDICTIONS, AIMED)
    # Against the block hit: t0, t3, t4 = 3 of 6; against the intended: t0, t1, t3.
    assert report.correct == 3 and report.trials == 6
    intended = report.intended
    assert intended is not None
    assert (intended.trials, intended.off_target) == (6, 2)
    assert (intended.correct_actual, intended.correct_intended) == (3, 3)
    assert (intended.off_target_actual, intended.off_target_intended) == (1, 1)
    assert intended.accuracy_actual == pytest.approx(0.5)
    assert intended.accuracy_intended == pytest.approx(0.5)
    # Predicting t4 as aimed (2) instead: one more against the intended block, one less
    # against the block hit.
    changed = [p if i != 4 else _pred(41.0, 2) for i, p in enumerate(AIMED_PREDICTIONS)]
    other = score(changed, AIMED).intended
    assert (other.correct_actual, other.correct_intended) == (2, 4)
    assert (other.off_target_actual, other.off_target_intended) == (0, 2)
    text = format_report(score(changed, AIMED))
    assert 'off-target throws (intended block != block hit): 2 of 6' in text
    assert 'against the block hit 0.333 (2/6), against the intended block 0.667 (4/6)' \
        in text
    assert 'predicted the block hit 0/2, the intended block 2/2' in text


def test_no_intended_section_when_every_throw_hit_its_target():
    on_target = [_aimed(i, t.block, t.block) for i, t in enumerate(TRUTHS)]
    report = score(PREDICTIONS, on_target)
    assert report.intended is None
    assert report.summary_dict()['intended'] is None
    assert 'off-target' not in format_report(report)
    assert score(PREDICTIONS, TRUTHS).intended is None  # intended block unknown (-1)


def test_intended_blocks_in_the_written_results(tmp_path):
    report = score(AIMED_PREDICTIONS, AIMED, meta={'mode': 'offline'})
    paths = write_report(report, tmp_path, AIMED_PREDICTIONS)
    summary = json.loads(paths['summary'].read_text())
    assert summary['intended'] == {
        'trials': 6, 'off_target': 2, 'correct_actual': 3, 'correct_intended': 3,
        'off_target_actual': 1, 'off_target_intended': 1, 'accuracy_actual': 0.5,
        'accuracy_intended': 0.5}
    with paths['per_action_csv'].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r['intended_block'] for r in rows] == ['1', '5', '9', '2', '2', '7']
    assert '| t1 | P1 | 6 | 5 | no |' in paths['per_action_md'].read_text()


def test_truth_records_carry_the_intended_block():
    from pitch_predictor.data.bag import TruthRecord

    records = [TruthRecord('a', 4, 'P2', 0, 10, 5, intended_block=7),
               {'trial_id': 'b', 'block': 3, 'first_stamp_ns': 20, 'last_stamp_ns': 30}]
    truths = truth_from_records(records)
    assert [(t.block, t.intended_block, t.off_target) for t in truths] == [
        (4, 7, True), (3, -1, False)]
    with pytest.raises(ScoringError, match='intended block of trial a'):
        score([], [TrialTruth('a', 4, 'P2', 0, 10, 5, intended_block=12)])
