"""
Score the node's predictions against a recording's ground truth.

Pure numpy (matplotlib only for the confusion-matrix figure, imported when it is drawn):
the same scoring serves the DDS replay, the listen-only mode and the offline mode.

Matching rule: a prediction belongs to the trial whose recorded frames
``[first_stamp_ns, last_stamp_ns]`` contain the prediction's start-frame stamp. The
first final prediction of a trial counts; later ones of the same trial are counted as
``extra``, predictions outside every trial as ``spurious``. A trial without any
prediction is ``missed`` and counts as wrong in ``accuracy`` (``accuracy_of_predicted``
leaves it out), so a detector that stays silent cannot look accurate.

Off-target throws: ``block`` is the block the ball hit, ``intended_block`` the one the
pitcher aimed at. When some trials of a recording hit another block than the intended
one (the paper's "miss" throws), the report adds :class:`IntendedScore`: accuracy against
the actual and against the intended block, overall and on the off-target throws alone.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
import json
import math
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from pitch_predictor.kinect import NUM_BLOCKS
from pitch_predictor.topics import FRAME_PERIOD_S

FRAME_PERIOD_NS = FRAME_PERIOD_S * 1e9  # exact (float): start errors in frames


class ScoringError(ValueError):
    """Predictions or ground truth that cannot be scored (bad block, bad stamps)."""


@dataclass(frozen=True)
class TrialTruth:
    """One recorded trial: what really happened and where it sits in the stream."""

    trial_id: str
    block: int
    participant: str
    first_stamp_ns: int
    last_stamp_ns: int
    start_stamp_ns: int  # true motion start (-1 when unknown, e.g. real recordings)
    intended_block: int = -1  # the block aimed at (-1 when unknown)

    @property
    def off_target(self) -> bool:
        """Tell whether the throw hit another block than the intended one (when known)."""
        return self.intended_block > 0 and self.intended_block != self.block


@dataclass(frozen=True)
class ObservedPrediction:
    """
    One final prediction as the evaluator received it.

    ``decision_latency_s`` is the node core's own time for the decision (recurrent
    layers + head over cached features); ``delivery_latency_s`` is measured from
    outside over DDS: from publishing the frame that completed the window to receiving
    the prediction (transport + queueing + decision). Either may be unknown (None).
    """

    start_stamp_ns: int
    block: int
    probabilities: tuple = ()
    decision_latency_s: Optional[float] = None
    delivery_latency_s: Optional[float] = None

    def to_json(self) -> dict:
        """Return a JSON-serialisable dict."""
        out = asdict(self)
        out['probabilities'] = [float(p) for p in self.probabilities]
        return out


@dataclass
class ActionResult:
    """One row of the per-action table."""

    trial_id: str
    participant: str
    true_block: int
    predicted_block: Optional[int]
    correct: bool
    confidence: Optional[float]
    start_error_frames: Optional[float]  # predicted start - true start, in frames
    decision_latency_ms: Optional[float]
    delivery_latency_ms: Optional[float]
    intended_block: Optional[int] = None  # None when unknown


@dataclass
class IntendedScore:
    """
    Accuracy against the block hit and the block aimed at, when some throws missed.

    Over the ``trials`` whose intended block is known; ``off_target`` of them hit another
    block than the intended one. ``correct_actual``/``correct_intended``: final
    predictions equal to the block hit / aimed at (a trial without a prediction is wrong
    for both); ``off_target_actual``/``off_target_intended``: the same counts on the
    off-target throws alone. On the other throws both blocks are the same.
    """

    trials: int
    off_target: int
    correct_actual: int
    correct_intended: int
    off_target_actual: int
    off_target_intended: int

    @property
    def accuracy_actual(self) -> float:
        """Share of the trials predicted as the block the ball hit."""
        return self.correct_actual / self.trials if self.trials else float('nan')

    @property
    def accuracy_intended(self) -> float:
        """Share of the trials predicted as the block the pitcher aimed at."""
        return self.correct_intended / self.trials if self.trials else float('nan')

    def to_dict(self) -> dict:
        """Return the counts and both accuracies as a JSON-serialisable dict."""
        return {**asdict(self), 'accuracy_actual': self.accuracy_actual,
                'accuracy_intended': self.accuracy_intended}


@dataclass
class LatencyStats:
    """Summary of one latency series, in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_ms: float


@dataclass
class EvaluationReport:
    """Everything the evaluator prints and writes."""

    trials: int
    predicted: int
    correct: int
    missed: int
    extra: int
    spurious: int
    accuracy: float
    accuracy_of_predicted: float
    confusion: np.ndarray  # (9, 9) int, rows = true block, columns = predicted block
    actions: list = field(default_factory=list)  # [ActionResult] in stream order
    decision_latency: Optional[LatencyStats] = None
    delivery_latency: Optional[LatencyStats] = None
    meta: dict = field(default_factory=dict)
    intended: Optional[IntendedScore] = None  # only when some throws were off target

    def summary_dict(self) -> dict:
        """Return the headline numbers as a JSON-serialisable dict."""
        return {
            'trials': self.trials,
            'predicted': self.predicted,
            'correct': self.correct,
            'missed': self.missed,
            'extra_predictions': self.extra,
            'spurious_predictions': self.spurious,
            'accuracy': self.accuracy,
            'accuracy_of_predicted': self.accuracy_of_predicted,
            'confusion_rows_true_cols_predicted': self.confusion.tolist(),
            'decision_latency': asdict(self.decision_latency) if self.decision_latency else None,
            'delivery_latency': asdict(self.delivery_latency) if self.delivery_latency else None,
            'intended': self.intended.to_dict() if self.intended else None,
            'meta': self.meta,
        }


def truth_from_records(records: Iterable) -> list[TrialTruth]:
    """Convert ground-truth records (``read_ground_truth`` output or dicts) to TrialTruth."""
    truths = []
    for rec in records:
        get = rec.get if isinstance(rec, dict) else (lambda k, d=None, r=rec: getattr(r, k, d))
        start = get('start_stamp_ns', None)
        if start is None:
            start = get('true_start_stamp_ns', -1)
        intended = get('intended_block', -1)
        truths.append(TrialTruth(
            trial_id=str(get('trial_id')),
            block=int(get('block')),
            participant=str(get('participant', '')),
            first_stamp_ns=int(get('first_stamp_ns')),
            last_stamp_ns=int(get('last_stamp_ns')),
            start_stamp_ns=int(start if start is not None else -1),
            intended_block=int(intended if intended is not None else -1),
        ))
    return sorted(truths, key=lambda t: t.first_stamp_ns)


def latency_stats(values_s: Sequence[float]) -> Optional[LatencyStats]:
    """Return p50/p95/max/mean in ms of latencies given in seconds (None if empty)."""
    vals = np.asarray([v for v in values_s if v is not None and math.isfinite(v)], float)
    if vals.size == 0:
        return None
    ms = vals * 1e3
    return LatencyStats(
        count=int(ms.size),
        p50_ms=float(np.percentile(ms, 50)),
        p95_ms=float(np.percentile(ms, 95)),
        max_ms=float(ms.max()),
        mean_ms=float(ms.mean()),
    )


def _check_block(block: int, where: str) -> int:
    if not 1 <= int(block) <= NUM_BLOCKS:
        raise ScoringError(f'{where}: block must be in 1..{NUM_BLOCKS}, got {block}')
    return int(block)


def score(predictions: Sequence[ObservedPrediction], truths: Sequence[TrialTruth],
          meta: Optional[dict] = None) -> EvaluationReport:
    """Match predictions to trials by start stamp and compute every metric."""
    truths = sorted(truths, key=lambda t: t.first_stamp_ns)
    for t in truths:
        _check_block(t.block, f'ground truth of trial {t.trial_id}')
        if t.intended_block > 0:
            _check_block(t.intended_block, f'intended block of trial {t.trial_id}')
        if t.last_stamp_ns < t.first_stamp_ns:
            raise ScoringError(f'ground truth of trial {t.trial_id}: last stamp before first')
    firsts = np.array([t.first_stamp_ns for t in truths], dtype=np.int64)

    matched: dict[int, ObservedPrediction] = {}
    extra = spurious = 0
    for i, pred in enumerate(predictions):
        _check_block(pred.block, f'prediction {i}')
        k = int(np.searchsorted(firsts, pred.start_stamp_ns, side='right')) - 1
        if k < 0 or pred.start_stamp_ns > truths[k].last_stamp_ns:
            spurious += 1
        elif k in matched:
            extra += 1
        else:
            matched[k] = pred

    confusion = np.zeros((NUM_BLOCKS, NUM_BLOCKS), dtype=np.int64)
    actions = []
    for k, truth in enumerate(truths):
        pred = matched.get(k)
        intended = truth.intended_block if truth.intended_block > 0 else None
        if pred is None:
            actions.append(ActionResult(truth.trial_id, truth.participant, truth.block, None,
                                        False, None, None, None, None, intended))
            continue
        confusion[truth.block - 1, pred.block - 1] += 1
        start_err = None
        if truth.start_stamp_ns >= 0:
            start_err = (pred.start_stamp_ns - truth.start_stamp_ns) / FRAME_PERIOD_NS
        actions.append(ActionResult(
            trial_id=truth.trial_id,
            participant=truth.participant,
            true_block=truth.block,
            predicted_block=pred.block,
            correct=pred.block == truth.block,
            confidence=float(max(pred.probabilities)) if len(pred.probabilities) else None,
            start_error_frames=start_err,
            decision_latency_ms=_ms(pred.decision_latency_s),
            delivery_latency_ms=_ms(pred.delivery_latency_s),
            intended_block=intended,
        ))

    correct = int(np.trace(confusion))
    n_pred = len(matched)
    used = list(matched.values())
    return EvaluationReport(
        trials=len(truths),
        predicted=n_pred,
        correct=correct,
        missed=len(truths) - n_pred,
        extra=extra,
        spurious=spurious,
        accuracy=correct / len(truths) if truths else float('nan'),
        accuracy_of_predicted=correct / n_pred if n_pred else float('nan'),
        confusion=confusion,
        actions=actions,
        decision_latency=latency_stats([p.decision_latency_s for p in used]),
        delivery_latency=latency_stats([p.delivery_latency_s for p in used]),
        meta=dict(meta or {}),
        intended=intended_score(truths, actions),
    )


def intended_score(truths: Sequence[TrialTruth],
                   actions: Sequence[ActionResult]) -> Optional[IntendedScore]:
    """Score against actual and intended blocks; None unless some throw was off target."""
    known = [(t, a) for t, a in zip(truths, actions) if t.intended_block > 0]
    off = [(t, a) for t, a in known if t.off_target]
    if not off:
        return None
    return IntendedScore(
        trials=len(known),
        off_target=len(off),
        correct_actual=sum(a.predicted_block == t.block for t, a in known),
        correct_intended=sum(a.predicted_block == t.intended_block for t, a in known),
        off_target_actual=sum(a.predicted_block == t.block for t, a in off),
        off_target_intended=sum(a.predicted_block == t.intended_block for t, a in off),
    )


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else seconds * 1e3


def _fmt(value, spec: str = '.1f') -> str:
    return '-' if value is None else format(value, spec)


ACTION_COLUMNS = ('trial_id', 'participant', 'true_block', 'predicted_block', 'correct',
                  'confidence', 'start_error_frames', 'decision_latency_ms',
                  'delivery_latency_ms', 'intended_block')


def per_action_markdown(report: EvaluationReport) -> str:
    """Return the per-action table as GitHub markdown (an intended column with misses)."""
    with_intended = report.intended is not None
    head = ('| trial | participant | true | predicted | ok | confidence | start error (frames)'
            ' | decision (ms) | delivery (ms) |' + (' intended |' if with_intended else ''))
    lines = [head, '|' + '---|' * (10 if with_intended else 9)]
    for a in report.actions:
        lines.append(
            f'| {a.trial_id} | {a.participant} | {a.true_block} | '
            f'{_fmt(a.predicted_block, "d")} | {"yes" if a.correct else "no"} | '
            f'{_fmt(a.confidence, ".2f")} | {_fmt(a.start_error_frames)} | '
            f'{_fmt(a.decision_latency_ms)} | {_fmt(a.delivery_latency_ms)} |'
            + (f' {_fmt(a.intended_block, "d")} |' if with_intended else ''))
    return '\n'.join(lines) + '\n'


def format_report(report: EvaluationReport) -> str:
    """Return the human-readable summary the CLI prints."""
    lines = [
        f'trials {report.trials}, predicted {report.predicted}, missed {report.missed}, '
        f'extra {report.extra}, spurious {report.spurious}',
        f'accuracy {report.accuracy:.3f} ({report.correct}/{report.trials})'
        f'; of predicted trials {report.accuracy_of_predicted:.3f}',
    ]
    intended = report.intended
    if intended is not None:
        lines += [
            f'off-target throws (intended block != block hit): {intended.off_target} of '
            f'{intended.trials}',
            f'  accuracy against the block hit {intended.accuracy_actual:.3f} '
            f'({intended.correct_actual}/{intended.trials}), against the intended block '
            f'{intended.accuracy_intended:.3f} ({intended.correct_intended}/'
            f'{intended.trials})',
            f'  on the off-target throws: predicted the block hit {intended.off_target_actual}'
            f'/{intended.off_target}, the intended block {intended.off_target_intended}/'
            f'{intended.off_target}',
        ]
    for name, stats in (('decision latency (node core)', report.decision_latency),
                        ('delivery latency (window complete -> prediction received)',
                         report.delivery_latency)):
        if stats is not None:
            lines.append(f'{name}: p50 {stats.p50_ms:.1f} ms, p95 {stats.p95_ms:.1f} ms, '
                         f'max {stats.max_ms:.1f} ms (n={stats.count})')
    diagnostics = report.meta.get('node_diagnostics') or {}
    if 'latency_p95_ms' in diagnostics:
        lines.append(f'decision latency inside the node (its /diagnostics): p95 '
                     f'{diagnostics["latency_p95_ms"]} ms, last '
                     f'{diagnostics.get("latency_last_ms")} ms; frames received '
                     f'{diagnostics.get("frames_received")}, dropped '
                     f'{diagnostics.get("frames_dropped")}')
    lines.append('confusion (rows = true block 1..9, columns = predicted block 1..9):')
    for b, row in enumerate(report.confusion, start=1):
        lines.append(f'  {b}: ' + ' '.join(f'{int(c):2d}' for c in row))
    return '\n'.join(lines)


def plot_confusion(confusion: np.ndarray, path: Path, title: str = '') -> None:
    """Draw the confusion matrix (rows true, columns predicted) with counts to a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    im = ax.imshow(confusion, cmap='Blues', vmin=0)
    ticks = np.arange(NUM_BLOCKS)
    ax.set_xticks(ticks, [str(b) for b in ticks + 1])
    ax.set_yticks(ticks, [str(b) for b in ticks + 1])
    ax.set_xlabel('predicted block')
    ax.set_ylabel('true block')
    if title:
        ax.set_title(title, fontsize=9)
    top = confusion.max() if confusion.size else 0
    for r in range(confusion.shape[0]):
        for c in range(confusion.shape[1]):
            if confusion[r, c]:
                ax.text(c, r, str(int(confusion[r, c])), ha='center', va='center',
                        color='white' if confusion[r, c] > top / 2 else 'black', fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: EvaluationReport, out_dir: Path,
                 predictions: Sequence[ObservedPrediction] = ()) -> dict:
    """Write summary.json, per_action.csv/.md, confusion.png (and predictions.jsonl)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        'summary': out_dir / 'summary.json',
        'per_action_csv': out_dir / 'per_action.csv',
        'per_action_md': out_dir / 'per_action.md',
        'confusion_png': out_dir / 'confusion.png',
    }
    paths['summary'].write_text(json.dumps(report.summary_dict(), indent=2) + '\n')
    with paths['per_action_csv'].open('w', newline='') as fh:
        writer = csv.writer(fh)
        writer.writerow(ACTION_COLUMNS)
        for a in report.actions:
            writer.writerow(['' if v is None else v
                             for v in (getattr(a, c) for c in ACTION_COLUMNS)])
    paths['per_action_md'].write_text(per_action_markdown(report))
    mode = report.meta.get('mode', '')
    plot_confusion(report.confusion, paths['confusion_png'],
                   title=f'{mode} accuracy {report.accuracy:.3f} '
                         f'({report.correct}/{report.trials})'.strip())
    if predictions:
        paths['predictions'] = out_dir / 'predictions.jsonl'
        with paths['predictions'].open('w') as fh:
            for p in predictions:
                fh.write(json.dumps(p.to_json()) + '\n')
    return paths
