"""
The paper's experiments and the peers, as a resumable grid of training runs.

::

    python -m training.experiments table3        # Table III grid (+ peers as extra rows)
    python -m training.experiments peers         # 2D/1D-ConvGRU, GRU AlexNet vs peers
    python -m training.experiments lopo          # leave one participant out
    python -m training.experiments robustness    # Section V-F: 2D-ConvGRU + last_flat, s 1/2/5
    python -m training.experiments anticipation  # streaming estimate vs window seen

Common options: ``--preset fast|paper`` (configs ``training/configs/<preset>_*.yaml``),
``--data DIR``, ``--out DIR`` (default ``runs/experiments``), ``--repeats N`` (the paper
trains every model twice), ``--rows a,b`` (row ids or prefixes), ``--time-budget MIN``
(start no new run after that), ``--dry-run``, and ``key=value`` overrides passed to
every run (``epochs=10``, ``max_minutes=4``: the same budget for every network).

Every run is ``python -m training.train`` in its own folder
``<out>/<preset>/<row>/seed<k>``; a folder with ``metrics.json`` is finished and skipped,
an interrupted one resumes from its ``state.pt``. The tables (markdown + CSV, beside
the paper's numbers) are rewritten after every run, so they always show what ran.
"""

import argparse
import csv
from dataclasses import dataclass
import json
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SAMPLING = 2  # the sampling of the shipped model and the peers' comparison
SHIPPED_FUSION = 'mean_flat'


@dataclass(frozen=True)
class Row:
    """One line of a table: a network, its sampling and fusion, the paper's numbers."""

    row_id: str
    label: str
    config: str  # training/configs/<preset>_<config>.yaml
    sampling: int
    fusion: Optional[str] = None
    pretrain: bool = False
    paper_acc: Optional[float] = None
    paper_seconds: Optional[float] = None

    def overrides(self) -> List[str]:
        """Return the train.py overrides that make this row from its config."""
        items = [f'sampling={self.sampling}']
        if self.fusion:
            items.append(f'model_config.fusion={self.fusion}')
        if self.pretrain:
            # torchvision's AlexNet widths, so the file's conv weights fit the backbone.
            items.append('model_config.channels=[' + ','.join(map(str, pretrain_channels()))
                         + ']')
        return items

    def setting(self) -> str:
        """Return the 'sampling + fusion' cell."""
        text = f'{self.sampling}' + (f' + {self.fusion}' if self.fusion else '')
        return text + (' + pre-train' if self.pretrain else '')


def pretrain_channels() -> Tuple[int, ...]:
    """Return the widths of the pre-training rows: torchvision's AlexNet's."""
    from pitch_predictor.models.networks import TORCHVISION_ALEXNET_CHANNELS
    return TORCHVISION_ALEXNET_CHANNELS


# The pre-training rows' label: their backbone has torchvision's AlexNet widths, not the
# preset's (Table I's widths, 96/256/384/384/256, are the original AlexNet's).
PRETRAIN_LABEL = 'torchvision AlexNet widths 64/192/384/256/256'
PRETRAIN_NOTE = (
    "Pre-training rows (`--pretrained FILE`: a local state dict with torchvision's AlexNet "
    'names `features.N.weight/bias`, read with weights_only=True): the backbone is built at '
    "torchvision's AlexNet widths 64/192/384/256/256 (conv1-3, the layer-6 conv, the "
    "layer-7 ConvGRU) and its convs start from the file's weights; the from-scratch rows "
    "keep the preset's widths, so a pre-training row differs from its scratch row in "
    'width too.')


def _convgru(kind: str, sampling: int, fusion: str = 'last_flat', pretrain: bool = False,
             acc: Optional[float] = None, seconds: Optional[float] = None) -> Row:
    label = {'1d': '1D-ConvGRU', '2d': '2D-ConvGRU', '2d2': '2D-2ConvGRU'}[kind]
    if pretrain:
        label += f' ({PRETRAIN_LABEL})'
    row_id = f'convgru{kind}-s{sampling}-{fusion}' + ('-pretrain' if pretrain else '')
    return Row(row_id, label, f'convgru{kind}', sampling, fusion, pretrain, acc, seconds)


# Table III of the paper (accuracy %, s/epoch on an RTX 2060); None = not in the paper.
TABLE3: Tuple[Row, ...] = (
    Row('gru_alexnet-s1-flat', 'GRU AlexNet', 'gru_alexnet', 1, 'flat', False, 65.74, 34),
    _convgru('1d', 1, acc=76.85, seconds=33),
    _convgru('1d', 2, acc=75.93, seconds=19),
    _convgru('1d', 3, acc=73.15, seconds=16),
    _convgru('1d', 4, acc=73.15, seconds=12),
    _convgru('1d', 5, acc=74.54, seconds=19),
    _convgru('1d', 6),
    _convgru('1d', 7),
    _convgru('2d', 1, acc=79.17, seconds=46),
    _convgru('2d', 1, pretrain=True, acc=69.44, seconds=46),
    _convgru('2d', 2, acc=77.31, seconds=20),
    _convgru('2d', 2, pretrain=True, acc=68.52, seconds=20),
    _convgru('2d', 3, acc=75.00, seconds=19),
    _convgru('2d', 3, pretrain=True, acc=66.20, seconds=19),
    _convgru('2d', 4, acc=73.15, seconds=13),
    _convgru('2d', 4, pretrain=True, acc=70.37, seconds=13),
    _convgru('2d', 5, acc=77.78, seconds=21),
    _convgru('2d', 5, pretrain=True, acc=67.59, seconds=21),
    _convgru('2d', 1, 'mean_flat', acc=68.98, seconds=47),
    _convgru('2d', 1, 'last_avg', acc=33.33, seconds=43),
    _convgru('2d', 1, 'flat', acc=74.07, seconds=53),
    _convgru('2d', 2, 'mean_flat', acc=77.78, seconds=21),
    _convgru('2d', 2, 'last_avg', acc=47.22, seconds=21),
    _convgru('2d', 2, 'flat', acc=70.83, seconds=22),
    _convgru('2d', 6, acc=65.74, seconds=21),
    _convgru('2d', 7, acc=70.37, seconds=21),
    _convgru('2d2', 5, acc=75.93, seconds=28),
)
PEERS: Tuple[Row, ...] = (
    Row(f'r3d_18-s{SHIPPED_SAMPLING}', 'R3D-18 (peer)', 'r3d_18', SHIPPED_SAMPLING),
    Row(f'r2plus1d_18-s{SHIPPED_SAMPLING}', 'R(2+1)D-18 (peer)', 'r2plus1d_18',
        SHIPPED_SAMPLING),
    Row(f'mc3_18-s{SHIPPED_SAMPLING}', 'MC3-18 (peer)', 'mc3_18', SHIPPED_SAMPLING),
    Row(f'skeleton_gru-s{SHIPPED_SAMPLING}', 'Skeleton GRU (peer, joints)', 'skeleton_gru',
        SHIPPED_SAMPLING),
)


def _with_paper(row: Row) -> Row:
    """Return Table III's row of the same id (it carries the paper's numbers), else row."""
    return next((r for r in TABLE3 if r.row_id == row.row_id), row)


SHIPPED_ROW = _with_paper(_convgru('2d', SHIPPED_SAMPLING, SHIPPED_FUSION))
# The comparison a user cares about: the shipped network against its alternatives, all
# with the shipped model's sampling and the same budget; cheapest first.
TWO_STREAM: Tuple[Row, ...] = (
    Row(f'two_stream_2d-s{SHIPPED_SAMPLING}', 'Two-stream 2D-ConvGRU + joints',
        'two_stream_2d', SHIPPED_SAMPLING),
    Row(f'two_stream_1d-s{SHIPPED_SAMPLING}', 'Two-stream 1D-ConvGRU + joints',
        'two_stream_1d', SHIPPED_SAMPLING),
)
COMPARISON: Tuple[Row, ...] = (
    SHIPPED_ROW,
    _with_paper(_convgru('1d', SHIPPED_SAMPLING, SHIPPED_FUSION)),
    PEERS[3],
    *TWO_STREAM,
    PEERS[0],
    Row(f'gru_alexnet-s{SHIPPED_SAMPLING}-flat', 'GRU AlexNet', 'gru_alexnet',
        SHIPPED_SAMPLING, 'flat'),
    PEERS[2],
    PEERS[1],
)
BASELINES_13 = (('spatial only [13]', 63.89), ('temporal only [13]', 74.07),
                ('two-stream fusion [13]', 71.30))
# Section V-F's models: 2D-ConvGRU with last_flat (Table III's rows) on sampling 1, 2, 5.
ROBUSTNESS_ROWS = tuple(_with_paper(_convgru('2d', s, 'last_flat')) for s in (1, 2, 5))
ANTICIPATION_ROW = _convgru('1d', SHIPPED_SAMPLING, SHIPPED_FUSION)
FRAME_RATE_EXTRA = (1, 2, 3, 4, 5)
VALIDATION_NOTE = ('Test numbers of the final models only: early stopping, the kept epoch '
                   'and the temperature were chosen on a validation split carved from the '
                   'training trials (1 per participant and block; under LOPO from the '
                   'training participants); each test split was evaluated once.')
MISSING_COUNTS = (1, 2, 3, 4, 5)
SHIFT_PIXELS = tuple(range(1, 11))


class Runner:
    """Runs (or skips) training runs and collects their metrics."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(args.out) / args.preset
        self.started = time.monotonic()
        self.ran: List[str] = []

    def config_path(self, row: Row) -> Path:
        """Return the YAML config a row starts from."""
        return ROOT / 'training' / 'configs' / f'{self.args.preset}_{row.config}.yaml'

    def run_dir(self, row: Row, seed: int, fold: Optional[str] = None) -> Path:
        """Return the folder of one run."""
        base = self.root / 'lopo' / row.row_id / fold if fold else self.root / row.row_id
        return base / f'seed{seed}'

    def out_of_time(self) -> bool:
        """Return True once the command's time budget is spent."""
        budget = self.args.time_budget
        return bool(budget) and time.monotonic() - self.started > budget * 60

    def finished(self, row: Row, seed: int, fold: Optional[str] = None) -> Optional[Dict]:
        """Return the metrics of a finished run, None if it has not finished."""
        metrics_path = self.run_dir(row, seed, fold) / 'metrics.json'
        return json.loads(metrics_path.read_text()) if metrics_path.exists() else None

    def train(self, row: Row, seed: int, fold: Optional[str] = None) -> Optional[Dict]:
        """Return the run's metrics, training it first unless it finished before."""
        run_dir = self.run_dir(row, seed, fold)
        metrics_path = run_dir / 'metrics.json'
        if metrics_path.exists():
            return json.loads(metrics_path.read_text())
        if row.pretrain and not self.args.pretrained:
            return None
        if self.args.dry_run or self.out_of_time():
            return None
        command = [sys.executable, '-m', 'training.train', '--config',
                   str(self.config_path(row).relative_to(ROOT)), '--out', str(run_dir)]
        if self.args.data:
            command += ['--data', self.args.data]
        # The paper's comparisons: every row on the dataset's own pitchers (the shipped
        # skeleton recipe adds simulated ones; a key=value override can put them back).
        command += [f'seed={seed}', 'extra_train_data=', *row.overrides()]
        if row.pretrain:
            command.append(f'pretrained={Path(self.args.pretrained).resolve()}')
        if fold:
            command.append(f'split=lopo:{fold}')
        command += self.args.overrides
        run_dir.mkdir(parents=True, exist_ok=True)
        print(f'[{time.strftime("%H:%M:%S")}] training {run_dir}', flush=True)
        env = dict(os.environ, TQDM_DISABLE='1')
        with (run_dir / 'train.log').open('a') as log:
            code = subprocess.call(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env=env)
        if code != 0 or not metrics_path.exists():
            print(f'  FAILED (exit {code}), see {run_dir / "train.log"}', flush=True)
            return None
        self.ran.append(str(run_dir))
        metrics = json.loads(metrics_path.read_text())
        print(f'  accuracy {metrics["test"]["accuracy"]:.3f}, '
              f'{metrics["seconds_per_epoch"]:.1f} s/epoch', flush=True)
        return metrics


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return '' if value is None or (isinstance(value, float) and np.isnan(value)) \
        else f'{value:.{digits}f}'


def summarize_runs(runs: List[Dict]) -> Dict[str, Any]:
    """Return mean/std of accuracy (in %), ECE, s/epoch and epochs over repeated runs."""
    from training.metrics import mean_and_std, row_column_accuracy
    acc = mean_and_std([100 * r['test']['accuracy'] for r in runs])
    grid_acc = [row_column_accuracy(np.asarray(r['test']['confusion_matrix'])) for r in runs]
    return {
        'acc_mean': acc['mean'], 'acc_std': acc['std'], 'n': acc['n'],
        'row_acc': mean_and_std([100 * g['row'] for g in grid_acc])['mean'],
        'col_acc': mean_and_std([100 * g['column'] for g in grid_acc])['mean'],
        'ece': mean_and_std([r['test']['ece'] for r in runs])['mean'],
        'seconds_per_epoch': mean_and_std([r['seconds_per_epoch'] for r in runs])['mean'],
        'epochs': mean_and_std([r['epochs_run'] for r in runs])['mean'],
        'minutes': mean_and_std([r['train_seconds'] / 60 for r in runs])['mean'],
        'test_trials': sorted({int(r.get('num_test', r['test']['num_trials'])) for r in runs}),
    }


TABLE_COLUMNS = ('row', 'model', 'sampling + fusion', 'paper acc %', 'ours acc %',
                 'ours sd', 'runs', 'test trials per run', 'grid row / column acc %', 'ECE',
                 'paper s/epoch (RTX 2060)',
                 'ours s/epoch (this machine)', 'epochs', 'train min')


def write_table(path_stem: Path, title: str, lines: List[Dict[str, Any]],
                notes: Sequence[str] = ()) -> None:
    """Write ``<stem>.md`` and ``<stem>.csv`` from table lines."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    with path_stem.with_suffix('.csv').open('w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(lines)
    md = [f'# {title}', '', '| ' + ' | '.join(TABLE_COLUMNS) + ' |',
          '|' + '---|' * len(TABLE_COLUMNS)]
    md += ['| ' + ' | '.join(str(line[c]) for c in TABLE_COLUMNS) + ' |' for line in lines]
    md += [''] + [f'- {note}' for note in notes]
    path_stem.with_suffix('.md').write_text('\n'.join(md) + '\n')


def table_line(row: Row, runs: List[Dict], status: str = '') -> Dict[str, Any]:
    """Return one table line (empty 'ours' cells when nothing ran)."""
    line = {'row': row.row_id, 'model': row.label, 'sampling + fusion': row.setting(),
            'paper acc %': _fmt(row.paper_acc), 'ours acc %': status, 'ours sd': '',
            'runs': 0, 'test trials per run': '', 'grid row / column acc %': '', 'ECE': '',
            'paper s/epoch (RTX 2060)': _fmt(row.paper_seconds, 0),
            'ours s/epoch (this machine)': '', 'epochs': '', 'train min': ''}
    if runs:
        s = summarize_runs(runs)
        line.update({'ours acc %': _fmt(s['acc_mean']),
                     'ours sd': _fmt(s['acc_std']) if s['n'] > 1 else '',
                     'runs': s['n'],
                     'test trials per run': '/'.join(str(n) for n in s['test_trials']),
                     'grid row / column acc %': f'{_fmt(s["row_acc"], 1)} / '
                                                f'{_fmt(s["col_acc"], 1)}',
                     'ECE': _fmt(s['ece'], 3),
                     'ours s/epoch (this machine)': _fmt(s['seconds_per_epoch'], 1),
                     'epochs': _fmt(s['epochs'], 0), 'train min': _fmt(s['minutes'], 1)})
    return line


def grid(runner: Runner, rows: Sequence[Row], selected: Sequence[Row], name: str,
         title: str) -> None:
    """Train the selected rows x repeats (skipping finished runs); tabulate every row."""
    notes = [f'{runner.args.preset} configs, data {runner.args.data or "(config default)"}; '
             'paper numbers: Table III (real Kinect data, RTX 2060).',
             'Baselines of [13] (paper): ' + ', '.join(f'{n} {a:.2f}' for n, a in BASELINES_13),
             VALIDATION_NOTE]
    if any(row.pretrain for row in rows):
        notes.append(PRETRAIN_NOTE)
    chosen = {row.row_id for row in selected}

    def write() -> None:
        lines = []
        for r in rows:
            runs = [m for m in (runner.finished(r, seed) for seed in range(runner.args.repeats))
                    if m]
            status = ('no ImageNet weights given' if r.pretrain and not runner.args.pretrained
                      else 'not run')
            lines.append(table_line(r, runs, status))
        write_table(runner.root / name, title, lines, notes)

    for row in rows:
        if row.row_id in chosen:
            for seed in range(runner.args.repeats):
                runner.train(row, seed)
            write()
    write()
    print(f'wrote {runner.root / name}.md')


def lopo(runner: Runner, rows: Sequence[Row]) -> None:
    """Leave one participant out: one run per participant, the mean over folds."""
    from pitch_predictor.data.cache import lopo_splits, TrialCache
    from training.train import resolve_preprocess
    from training.config import load_config
    cfg = load_config(str(runner.config_path(rows[0])))
    data = runner.args.data or cfg.data
    cache = TrialCache(data)
    if cache.preprocess.stored_size != resolve_preprocess(cfg.preprocess).stored_size:
        raise SystemExit(f'{data}: its crops do not fit the {runner.args.preset} configs')
    folds = [str(p) for p, _, _ in lopo_splits(cache)]
    lines, per_fold = [], []
    for row in rows:
        runs = []
        for fold in folds:
            for seed in range(runner.args.repeats):
                metrics = runner.train(row, seed, fold)
                if metrics:
                    runs.append(metrics)
                    per_fold.append({'row': row.row_id, 'participant': fold, 'seed': seed,
                                     'accuracy': metrics['test']['accuracy'],
                                     'ece': metrics['test']['ece'],
                                     'test_trials': metrics['test']['num_trials']})
        line = table_line(row, runs, 'not run')
        line['row'] = f'{row.row_id} ({len({r["split"] for r in runs})}/{len(folds)} folds)'
        lines.append(line)
        write_table(runner.root / 'lopo', 'Leave one participant out (cross-subject)', lines,
                    [f'folds: {", ".join(folds)}; accuracy = mean over folds and seeds.',
                     'Paper: within-subject split only (no cross-subject numbers).',
                     VALIDATION_NOTE])
    with (runner.root / 'lopo_folds.csv').open('w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=['row', 'participant', 'seed', 'accuracy', 'ece',
                                               'test_trials'])
        writer.writeheader()
        writer.writerows(per_fold)
    print(f'wrote {runner.root / "lopo"}.md')


def _load_run(run_dir: Path):
    """Return (model, cache, test trials, checkpoint, device) of a finished run."""
    import torch

    from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
    from pitch_predictor.data.cache import TrialCache
    from training.splits import make_split
    metrics = json.loads((run_dir / 'metrics.json').read_text())
    ckpt = load_checkpoint(run_dir / 'model.pt')
    device = torch.device('cpu')
    model = build_model_from_checkpoint(ckpt, device)
    cache = TrialCache(metrics['data'])
    cfg = metrics.get('config', {})
    test_idx = make_split(cache, metrics['split'], int(cfg.get('val_per_group', 0)),
                          int(cfg.get('val_seed', 0))).test
    return model, cache, test_idx, ckpt, device


def robustness(runner: Runner, rows: Sequence[Row], repetitions: int = 3) -> None:
    """Section V-F: accuracy under frame-rate error, missing frames and position shift."""
    from training.evaluate import predict_trials
    from training.perturbations import frame_rate_windows, missing_frames, position_shift
    from training.plots import plot_series
    results = []
    for row in rows:
        if runner.train(row, 0) is None:
            continue
        model, cache, test_idx, ckpt, device = _load_run(runner.run_dir(row, 0))
        labels = np.asarray(cache.labels)[test_idx]
        tests = ([('frame_rate', e) for e in FRAME_RATE_EXTRA]
                 + [('missing', m) for m in MISSING_COUNTS]
                 + [('shift', p) for p in SHIFT_PIXELS])
        clean = predict_trials(model, cache, test_idx, ckpt.sampling_method, ckpt.preprocess,
                               device)
        results.append({'row': row.row_id, 'sampling': row.sampling, 'test': 'clean',
                        'level': 0, 'repetition': 0,
                        'accuracy': float((clean.argmax(1) == labels).mean())})
        for test, level in tests:
            for rep in range(repetitions):
                rng = np.random.default_rng([rep, level, len(test)])
                kwargs = {}
                if test == 'frame_rate':
                    kwargs['load_frames'] = (
                        lambda trials, c=cache, e=level, g=rng:
                        frame_rate_windows(c, trials, e, g))
                elif test == 'missing':
                    kwargs['perturb'] = missing_frames(level, rng)
                else:
                    kwargs['perturb'] = position_shift(level, ckpt.preprocess, rng)
                probs = predict_trials(model, cache, test_idx, ckpt.sampling_method,
                                       ckpt.preprocess, device, **kwargs)
                results.append({'row': row.row_id, 'sampling': row.sampling, 'test': test,
                                'level': level, 'repetition': rep,
                                'accuracy': float((probs.argmax(1) == labels).mean())})
        print(f'robustness: {row.row_id} done', flush=True)
    if not results:
        print('robustness: no trained model (dry run or out of time)')
        return
    out = runner.root / 'robustness'
    out.mkdir(parents=True, exist_ok=True)
    with (out / 'robustness.csv').open('w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    md = ['# Robustness (Section V-F)', '',
          'Models: ' + ', '.join(f'{r.label} sampling {r.setting()}' for r in rows)
          + " (the paper's Section V-F rows; each from its "
          f'`{runner.args.preset}_convgru2d.yaml` config with that sampling and fusion).', '',
          '| model | test | level | accuracy % (mean ± sd over repetitions) |',
          '|---|---|---|---|']
    for (test, xlabel) in (('frame_rate', 'extra frames deleted (of 40 + k)'),
                           ('missing', 'frames set to zero (of 40)'),
                           ('shift', 'position shift (px of the 240 crop)')):
        series = {}
        for row in rows:
            levels = sorted({r['level'] for r in results if r['row'] == row.row_id
                             and r['test'] == test})
            if not levels:
                continue
            stats = [[r['accuracy'] for r in results if r['row'] == row.row_id
                      and r['test'] == test and r['level'] == lv] for lv in levels]
            means = [float(np.mean(s)) for s in stats]
            stds = [float(np.std(s)) for s in stats]
            series[f'{row.label} sampling {row.setting()}'] = (levels, means, stds)
            md += [f'| {row.row_id} | {test} | {lv} | {100 * m:.2f} ± {100 * s:.2f} |'
                   for lv, m, s in zip(levels, means, stds)]
        if series:
            plot_series(series, out / f'robustness_{test}.png', xlabel=xlabel,
                        title=f'Robustness: {test}')
    md += ['', 'Clean accuracy: ' + ', '.join(
        f'{r["row"]} {100 * r["accuracy"]:.2f}' for r in results if r['test'] == 'clean'),
        'Paper: robust to temporal errors (over 75 % with missing frames), clearly less '
        'robust to position errors.']
    (out / 'robustness.md').write_text('\n'.join(md) + '\n')
    print(f'wrote {out / "robustness.md"}')


def anticipation(runner: Runner) -> None:
    """Accuracy of the forward model's streaming estimate vs the fraction of window seen."""
    from training.evaluate import anticipation_probabilities
    from training.plots import plot_series
    row = ANTICIPATION_ROW
    if runner.train(row, 0) is None:
        print('anticipation: the forward model is not trained (dry run or out of time)')
        return
    model, cache, test_idx, ckpt, device = _load_run(runner.run_dir(row, 0))
    labels = np.asarray(cache.labels)[test_idx]
    fractions, probs = anticipation_probabilities(model, cache, test_idx,
                                                  ckpt.sampling_method, ckpt.preprocess,
                                                  device)
    accuracy = (probs.argmax(-1) == labels[:, None]).mean(axis=0)
    confidence = probs.max(-1).mean(axis=0)
    out = runner.root / 'anticipation'
    out.mkdir(parents=True, exist_ok=True)
    with (out / 'anticipation.csv').open('w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['step', 'fraction_seen', 'accuracy', 'mean_confidence'])
        for k, (frac, acc, conf) in enumerate(zip(fractions, accuracy, confidence), start=1):
            writer.writerow([k, f'{frac:.4f}', f'{acc:.4f}', f'{conf:.4f}'])
    plot_series({f'{row.label} sampling {row.sampling} (accuracy)':
                 (list(fractions), list(accuracy), [0.0] * len(accuracy)),
                 'mean top-class probability': (list(fractions), list(confidence),
                                                [0.0] * len(confidence))},
                out / 'anticipation.png', xlabel='fraction of the 40-frame window seen',
                title='Early estimate of the streaming model')
    md = ['# Anticipation: streaming estimate vs fraction of the window seen', '',
          '| step | fraction seen | accuracy % | mean confidence |', '|---|---|---|---|']
    md += [f'| {k} | {f:.2f} | {100 * a:.2f} | {c:.3f} |'
           for k, (f, a, c) in enumerate(zip(fractions, accuracy, confidence), start=1)]
    (out / 'anticipation.md').write_text('\n'.join(md) + '\n')
    print(f'wrote {out / "anticipation.md"}')


def check_pretrained(path: str) -> None:
    """Stop with a clear message unless ``path`` is a torchvision-layout AlexNet file."""
    from pitch_predictor.models.networks import read_alexnet_convs
    try:
        convs = read_alexnet_convs(path)
    except ValueError as exc:
        raise SystemExit(f'--pretrained: {exc}') from None
    found = [(name, tuple(weight.shape)) for name, weight, _ in convs]
    widths = pretrain_channels()
    # torchvision's AlexNet: conv 11x11 64, 5x5 192, 3x3 384, 3x3 256, 3x3 256.
    expected = [(f'features.{n}', (out, cin, k, k)) for n, out, cin, k in zip(
        (0, 3, 6, 8, 10), widths, (3, *widths[:-1]), (11, 5, 3, 3, 3))]
    if found != expected:
        raise SystemExit(f'--pretrained {path}: convs {found}; the pre-training rows need '
                         f"torchvision's AlexNet layout, {expected} (a state dict of "
                         'torchvision.models.alexnet)')


def select_rows(rows: Sequence[Row], wanted: Optional[str]) -> List[Row]:
    """Keep rows whose id starts with one of the comma-separated prefixes."""
    if not wanted:
        return list(rows)
    prefixes = [w.strip() for w in wanted.split(',') if w.strip()]
    chosen = [r for r in rows if any(r.row_id.startswith(p) for p in prefixes)]
    if not chosen:
        raise SystemExit(f'--rows {wanted!r} matches none of: '
                         f'{", ".join(r.row_id for r in rows)}')
    return chosen


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('experiment',
                        choices=['table3', 'peers', 'lopo', 'robustness', 'anticipation'])
    parser.add_argument('--preset', choices=['fast', 'paper'], default='fast')
    parser.add_argument('--data', default='', help='TrialCache folder for every run')
    parser.add_argument('--out', default='runs/experiments')
    parser.add_argument('--repeats', type=int, default=2, help='seeds per row')
    parser.add_argument('--rows', default='', help='comma-separated row id prefixes')
    parser.add_argument('--pretrained', default='',
                        help="local ImageNet AlexNet weights in torchvision's layout "
                             '(a state dict, features.N.weight): the pre-training rows')
    parser.add_argument('--time-budget', type=float, default=0.0,
                        help='minutes; start no new run after that (0: no limit)')
    parser.add_argument('--dry-run', action='store_true',
                        help='write the tables from finished runs only')
    parser.add_argument('overrides', nargs='*', help='key=value passed to every run')
    args = parser.parse_intermixed_args(argv)
    if args.pretrained:
        check_pretrained(args.pretrained)
    runner = Runner(args)
    if args.experiment == 'table3':
        grid(runner, TABLE3 + PEERS, select_rows(TABLE3 + PEERS, args.rows), 'table3',
             'Table III: accuracy on the within-subject test split')
    elif args.experiment == 'peers':
        grid(runner, COMPARISON, select_rows(COMPARISON, args.rows), 'peers',
             'ConvGRU against its alternatives (same data, within-subject split)')
    elif args.experiment == 'lopo':
        lopo(runner, select_rows(COMPARISON, args.rows or COMPARISON[0].row_id))
    elif args.experiment == 'robustness':
        robustness(runner, select_rows(ROBUSTNESS_ROWS, args.rows))
    else:
        anticipation(runner)
    print(f'runs trained now: {len(runner.ran)}')


if __name__ == '__main__':
    main()
