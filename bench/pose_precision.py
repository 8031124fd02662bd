"""
How precisely must an image network find the joints to see the row? A 2D-pose ceiling.

A skeleton GRU trained on what the colour camera sees of the Kinect joints (features
``'image'``: their pinhole projection, no depth; ``training.train --config
training/configs/fast_skeleton_gru.yaml model_config.features=image``) is scored on the
paper split's validation trials while every joint of every frame gets independent
Gaussian jitter in the image plane, like a 2D pose estimator's. The jitter is given in
pixels of the fast network's 112-px input (the 240-px centre crop of the 640x360 frame:
1 px there is about 2.1 cm at the pitcher's 3.5 m) and applied to the 3D joints as
``x += s * z / f``, ``y += s * z / f`` (f: the Kinect V2 colour focal length, 1081.37 px
at 1080p, in 112-px-input pixels: 168.2), which moves each projection by exactly that
many pixels and leaves the depth alone. Each level is repeated ``--repeats`` times; the
decision is the node's (the checkpoint's temperature over the test clips).

The RGB 2D-ConvGRU's pose-supervision probe (``pose_loss_weight``, docs/training.md)
reaches an RMS joint error that this table translates into the accuracy a perfect use of
its pose could give.

    OMP_NUM_THREADS=1 .venv/bin/python bench/pose_precision.py --models RUN/model.pt ... \
        [--cache data/synthetic/cache_fast] [--pixels 0 0.5 1 2 4] [--out result.json]
"""

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np
from pitch_predictor.data.cache import TrialCache
from pitch_predictor.models.checkpoint import build_model_from_checkpoint, load_checkpoint
from pitch_predictor.models.decision import checkpoint_temperature
from pitch_predictor.models.preprocessing import fast_preprocess, KINECT_V2_COLOR_FOCAL
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.evaluate import predict_trials  # noqa: E402
from training.splits import make_split  # noqa: E402

# The Kinect V2 colour focal length (px at 1080 rows) in pixels of the fast network input:
# the centre crop spans crop_size / frame_height of the height (720 of 1080 rows) and is
# shown at output_size (112) pixels.
_FAST = fast_preprocess()
FOCAL_112 = KINECT_V2_COLOR_FOCAL * _FAST.output_size / (
    1080.0 * _FAST.crop_size / _FAST.frame_height)


def jitter(pixels: float, rng: torch.Generator):
    """Return a perturbation moving every joint's projection by N(0, pixels^2) per axis."""
    def perturb(joints: torch.Tensor) -> torch.Tensor:
        if pixels <= 0:
            return joints
        noise = torch.randn(joints.shape[:-1] + (2,), generator=rng) * pixels / FOCAL_112
        moved = joints.clone()
        moved[..., :2] = joints[..., :2] + noise * joints[..., 2:3]  # NaN stays NaN
        return moved
    return perturb


def row_col(probs: np.ndarray, labels: np.ndarray):
    """Return (accuracy, row accuracy, column accuracy) of the argmax decision."""
    pred = probs.argmax(1)
    return (float((pred == labels).mean()), float((pred // 3 == labels // 3).mean()),
            float((pred % 3 == labels % 3).mean()))


def main(argv=None) -> int:
    """Score the models under image-plane jitter; print and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', required=True,
                        help="model.pt of skeleton GRUs with features 'image'")
    parser.add_argument('--cache', default='data/synthetic/cache_fast')
    parser.add_argument('--pixels', nargs='+', type=float, default=[0, 0.5, 1, 2, 4])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    cache = TrialCache(args.cache)
    trials = make_split(cache, 'paper').validation
    labels = np.asarray(cache.labels)[trials]
    rows = []
    for path in args.models:
        ckpt = load_checkpoint(path)
        features = ckpt.model_config.get('features')
        if not str(features).startswith('image'):
            parser.error(f'{path}: features {features!r}; this bench needs an image model')
        model = build_model_from_checkpoint(ckpt).eval()
        for pixels in args.pixels:
            for repeat in range(args.repeats if pixels > 0 else 1):
                rng = torch.Generator().manual_seed(1000 * repeat + 17)
                probs = predict_trials(model, cache, trials, ckpt.sampling_method,
                                       ckpt.preprocess, torch.device('cpu'),
                                       perturb=jitter(pixels, rng),
                                       temperature=checkpoint_temperature(ckpt.meta))
                acc, row, col = row_col(probs, labels)
                rows.append({'model': path, 'pixels': pixels, 'repeat': repeat,
                             'accuracy': acc, 'row': row, 'column': col})
    summary = {}
    for pixels in args.pixels:
        chosen = [r for r in rows if r['pixels'] == pixels]
        summary[f'{pixels:g} px'] = {
            key: [round(float(np.mean([r[key] for r in chosen])), 4),
                  round(float(np.std([r[key] for r in chosen])), 4)]
            for key in ('accuracy', 'row', 'column')}
    result = {'trials': int(len(trials)), 'models': args.models, 'repeats': args.repeats,
              'mean_sd_over_models_and_repeats': summary,
              'seconds': round(time.time() - t0, 1)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
