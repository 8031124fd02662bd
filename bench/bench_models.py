"""
Models and checkpoints for the benchmarks (imported by them, not a benchmark itself).

The shipped model is used when it exists; otherwise (and for the paper-size rows) a
randomly initialised model of the same architecture: costs do not depend on weights.
"""

from pathlib import Path
from typing import Tuple

from pitch_predictor.models.checkpoint import save_checkpoint
from pitch_predictor.models.preprocessing import fast_preprocess, paper_preprocess
from pitch_predictor.models.registry import build_model, fast_config, model_config_defaults
from pitch_predictor.shipped_model import default_model_path
import torch

DEFAULT_MODEL = 'convgru2d_alexnet'


def bench_checkpoint(directory: Path, size: str = 'fast', name: str = DEFAULT_MODEL,
                     prefer_shipped: bool = True) -> Tuple[Path, str]:
    """Return (checkpoint path, label): the shipped model, or a random ``size`` model."""
    shipped = default_model_path()
    if size == 'fast' and prefer_shipped and shipped.exists():
        return shipped, f'shipped model ({shipped.name})'
    torch.manual_seed(0)
    config = fast_config(name) if size == 'fast' else model_config_defaults(name)
    model = build_model(name, **config)
    preprocess = fast_preprocess() if size == 'fast' else paper_preprocess()
    path = Path(directory) / f'{name}_{size}_random.pt'
    save_checkpoint(path, model, model_name=name, model_config=model.config,
                    preprocess=preprocess, sampling_method=1, meta={'bench': 'random init'})
    return path, f'{name} {size} config ({config["input_size"]}x{config["input_size"]}), ' \
                 'random weights'
