"""
How many pitchers does the skeleton recipe need? Accuracy on new pitchers vs extra ones.

::

    python -m training.pitcher_scaling --extra data/synthetic/cache_fast_extra24 \
        --judge data/synthetic/cache_fast_newpeople --counts 0,6,12,24 --seeds 0,1

Trains ``training/configs/fast_skeleton_gru.yaml`` on the dataset's six pitchers plus
the first N pitchers of ``--extra`` (one cache or several, comma-separated, taken in order;
``extra_train_pitchers=N``; N = 0: the six alone),
for every N and seed, in resumable run folders ``<out>/n<N>_s<seed>``; then scores each
model on every trial of ``--judge`` (pitchers of another simulator seed, in no training
set) and writes ``scaling.csv``, ``scaling.md`` and ``scaling.png`` (mean and sd over
the seeds) to ``--out``. The judge set picks a recipe; it is not a test set.
"""

import argparse
import csv
import json
from pathlib import Path
import statistics
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

from training.config import cache_list

ROOT = Path(__file__).resolve().parent.parent
CONFIG = 'training/configs/fast_skeleton_gru.yaml'


def run(command: List[str], log: Path) -> None:
    """Run one step (training or evaluation) with its output in ``log``; fail loudly."""
    with log.open('w') as f:
        code = subprocess.run(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f'{" ".join(command)} failed (exit {code}); see {log}')


def score(run_dir: Path, count: int, seed: int, args: argparse.Namespace) -> Dict[str, float]:
    """Train (unless finished) and judge one model; return its figures."""
    if not (run_dir / 'metrics.json').exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        extra = ([f'extra_train_data={args.extra}', f'extra_train_pitchers={count}']
                 if count else ['extra_train_data='])
        print(f'training {run_dir}', flush=True)
        run([sys.executable, '-m', 'training.train', '--config', CONFIG, '--out',
             str(run_dir), f'seed={seed}', *extra, *args.overrides], run_dir / 'train.log')
    judged = run_dir / 'judge.json'
    if not judged.exists():
        run([sys.executable, '-m', 'training.evaluate', '--model', str(run_dir / 'model.pt'),
             '--data', args.judge, '--out', str(judged)], run_dir / 'judge.log')
    metrics = json.loads((run_dir / 'metrics.json').read_text())
    report = json.loads(judged.read_text())
    actual = report['actual']
    return {'pitchers': count, 'seed': seed, 'train': metrics['train']['accuracy'],
            'validation': metrics['validation']['accuracy'], 'judge': actual['accuracy'],
            'judge_row': actual['row_accuracy'], 'judge_ece': actual['ece'],
            'judge_trials': report['num_trials'],
            'train_seconds': metrics['train_seconds']}


def mean_sd(values: Sequence[float]) -> str:
    """Return 'mean ± sd' in percent (sd only with two values or more)."""
    text = f'{100 * statistics.mean(values):.1f}'
    return text + (f' ± {100 * statistics.stdev(values):.1f}' if len(values) > 1 else '')


def write_report(rows: List[Dict[str, float]], out: Path) -> None:
    """Write the CSV, the markdown table and the plot."""
    with (out / 'scaling.csv').open('w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    counts = sorted({int(r['pitchers']) for r in rows})
    lines = ['| extra pitchers | training pitchers | train % | validation % | new pitchers % '
             '| new-pitcher row % | new-pitcher ECE | seeds |',
             '|---|---|---|---|---|---|---|---|']
    series_x, series_mean, series_sd = [], [], []
    for n in counts:
        group = [r for r in rows if r['pitchers'] == n]
        judge = [r['judge'] for r in group]
        lines.append(f'| {n} | {6 + n} | {mean_sd([r["train"] for r in group])} | '
                     f'{mean_sd([r["validation"] for r in group])} | {mean_sd(judge)} | '
                     f'{mean_sd([r["judge_row"] for r in group])} | '
                     f'{statistics.mean(r["judge_ece"] for r in group):.3f} | {len(group)} |')
        series_x.append(6 + n)
        series_mean.append(statistics.mean(judge))
        series_sd.append(statistics.stdev(judge) if len(judge) > 1 else 0.0)
    lines.append(f'\nNew pitchers: {int(rows[0]["judge_trials"])} trials of pitchers in no '
                 'training set; mean ± sd over seeds.')
    (out / 'scaling.md').write_text('\n'.join(lines) + '\n')
    from training.plots import plot_series
    plot_series({'skeleton GRU': (series_x, series_mean, series_sd)}, out / 'scaling.png',
                xlabel='pitchers in the training set (6 recorded + simulated)',
                ylabel='accuracy on new pitchers',
                title='Skeleton GRU on new pitchers vs pitchers trained on')
    print((out / 'scaling.md').read_text())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the grid and write the report."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--extra', default='data/synthetic/cache_fast_extra24',
                        help='extra pitchers: one cache, or several separated by commas '
                             '(the first N pitchers over them in order)')
    parser.add_argument('--judge', default='data/synthetic/cache_fast_newpeople')
    parser.add_argument('--counts', default='0,6,12,24', help='extra pitchers per row')
    parser.add_argument('--seeds', default='0,1')
    parser.add_argument('--out', default='runs/pitcher_scaling')
    parser.add_argument('overrides', nargs='*', help='key=value passed to every run')
    args = parser.parse_args(argv)
    for path in (*cache_list(args.extra), args.judge):
        if not (ROOT / path).is_dir() and not Path(path).is_dir():
            parser.error(f'{path}: no such cache (see docs/training.md, "More pitchers")')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [score(out / f'n{n}_s{s}', n, s, args)
            for n in map(int, args.counts.split(',')) for s in map(int, args.seeds.split(','))]
    write_report(rows, out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
