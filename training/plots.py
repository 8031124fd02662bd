"""
Figures of a run and of the experiments (PNG files, no display needed).

Learning curves of several runs side by side (each run's ``metrics.json`` history):

    .venv/bin/python -m training.plots --runs runs/a runs/b --labels a b --out curves.png
"""

import argparse
import json
from pathlib import Path
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path,
                   title: str = 'Confusion matrix') -> None:
    """Save the confusion matrix (rows true, columns predicted) with counts in the cells."""
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(6, 5.2))
    image = ax.imshow(matrix, cmap='Blues')
    ax.set_xticks(range(len(class_names)), [n.replace('block', '') for n in class_names])
    ax.set_yticks(range(len(class_names)), [n.replace('block', '') for n in class_names])
    ax.set_xlabel('predicted block')
    ax.set_ylabel('true block')
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            ax.text(col, row, str(count), ha='center', va='center',
                    color='white' if count > threshold else 'black', fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history: List[Mapping[str, float]], path: Path, title: str = '') -> None:
    """Save training loss and train/validation accuracy against epoch."""
    epochs = [h['epoch'] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h['train_loss'] for h in history], label='train')
    # Runs from before the validation split recorded the test split every epoch.
    key, name = ('val', 'validation') if any(h.get('val_loss') is not None for h in history) \
        else ('test', 'test')
    evaluated = [h for h in history if h.get(f'{key}_loss') is not None]
    if evaluated:
        ax_loss.plot([h['epoch'] for h in evaluated], [h[f'{key}_loss'] for h in evaluated],
                     label=name)
    ax_loss.set_xlabel('epoch')
    ax_loss.set_ylabel('cross-entropy')
    ax_loss.legend()
    ax_acc.plot(epochs, [h['train_acc'] for h in history], label='train (augmented clips)')
    if evaluated:
        ax_acc.plot([h['epoch'] for h in evaluated], [h[f'{key}_acc'] for h in evaluated],
                    label=f'{name} (Table II averaging)')
    ax_acc.axhline(1 / 9, color='grey', linestyle=':', label='chance')
    ax_acc.set_xlabel('epoch')
    ax_acc.set_ylabel('accuracy')
    ax_acc.set_ylim(0, 1)
    ax_acc.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_series(series: Dict[str, Tuple[Sequence[float], Sequence[float], Sequence[float]]],
                path: Path, *, xlabel: str, ylabel: str = 'accuracy', title: str = '',
                reference: float = 1 / 9) -> None:
    """Save lines with error bars: ``series[label] = (x, mean, std)``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, mean, std) in series.items():
        ax.errorbar(x, mean, yerr=std, marker='o', capsize=3, label=label)
    if reference is not None:
        ax.axhline(reference, color='grey', linestyle=':', label='chance')
    _finish(fig, ax, path, xlabel=xlabel, ylabel=ylabel, top=1.02, title=title)


def _finish(fig, ax, path: Path, *, xlabel: str, ylabel: str, top: float, title: str) -> None:
    """Label an accuracy plot (0 .. ``top``), add the legend, save it and close it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, top)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_run_curves(runs: Dict[str, List[Mapping[str, float]]], path: Path,
                    title: str = '') -> None:
    """
    Save the training (dashed) and validation (solid) accuracy of several runs.

    ``runs[label]`` is a run's history (``metrics.json`` ``history``); a run's colour is
    shared by its two lines and the chosen (best validation) epoch is marked.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for index, (label, history) in enumerate(runs.items()):
        colour = f'C{index % 10}'
        ax.plot([h['epoch'] for h in history], [h['train_acc'] for h in history],
                linestyle='--', color=colour, linewidth=1)
        scored = [h for h in history if h.get('val_acc') is not None]
        if scored:
            ax.plot([h['epoch'] for h in scored], [h['val_acc'] for h in scored],
                    color=colour, label=label)
            best = max(scored, key=lambda h: (h['val_acc'], -h['val_loss'], -h['epoch']))
            ax.plot([best['epoch']], [best['val_acc']], marker='o', color=colour)
    ax.axhline(1 / 9, color='grey', linestyle=':', label='chance (9 blocks)')
    _finish(fig, ax, path, xlabel='epoch',
            ylabel='accuracy (solid: validation, dashed: training clips)', top=1.0, title=title)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Plot the learning curves of run folders (their metrics.json) into one figure."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--runs', nargs='+', required=True, help='run folders')
    parser.add_argument('--labels', nargs='*', default=None, help='one per run')
    parser.add_argument('--title', default='')
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    labels = args.labels or [Path(run).name for run in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f'{len(labels)} labels for {len(args.runs)} runs')
    runs = {}
    for label, run in zip(labels, args.runs):
        metrics = Path(run) / 'metrics.json'
        if not metrics.is_file():
            parser.error(f'{run}: no metrics.json (not a finished training run)')
        runs[label] = json.loads(metrics.read_text())['history']
    plot_run_curves(runs, Path(args.out), args.title)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
