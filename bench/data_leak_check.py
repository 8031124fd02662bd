"""
Does the synthetic set carry its label only in the motion? Two classifiers say.

1. Pre-motion frames (before the true motion onset): the mean of frames 0..9 as a
   16x16 colour thumbnail, plus the mean joints of those frames. A classifier trained on
   these should score at chance (1/9 = 11 %; the bar is <= 20 %).
2. Release kinematics: the throwing hand's position and velocity around release, found
   in the (noisy) Kinect joints as the frame of peak hand speed, in the pitcher's frame
   (from the rest stance). The label follows from these by physics, so a simple
   classifier should score high. With ``--layout``, the
   generator's exact release state (pitchsim.json) is scored too, as an upper bound.

Classifiers (numpy only): nearest centroid, L2-regularised softmax regression, and the
same on the features plus their pairwise products; standardised features, trained and
tested on the paper's split (per participant and block 8 train / 2 test), averaged
over ``--splits`` split seeds.

    .venv/bin/python bench/data_leak_check.py --cache data/synthetic/cache_fast \
        --layout data/synthetic/layout
"""

import argparse
import json
from pathlib import Path
import sys
import time
from typing import Callable, Dict, List

import cv2
import numpy as np

from pitch_predictor.data.cache import paper_split, TrialCache
from pitch_predictor.data.layout import read_meta
from pitch_predictor.kinect import JOINT_INDEX, NUM_BLOCKS


def standardise(train: np.ndarray, test: np.ndarray):
    """Scale features by the training mean and std."""
    mean = train.mean(0)
    std = train.std(0) + 1e-8
    return (train - mean) / std, (test - mean) / std


def nearest_centroid(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray
                     ) -> np.ndarray:
    """Predict the class whose training mean is nearest."""
    centroids = np.stack([x_train[y_train == c].mean(0) if np.any(y_train == c)
                          else np.full(x_train.shape[1], np.inf) for c in range(NUM_BLOCKS)])
    dist = ((x_test[:, None, :] - centroids[None]) ** 2).sum(-1)
    return dist.argmin(1)


def softmax_regression(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                       l2: float = 1e-2, steps: int = 1500, lr: float = 0.5) -> np.ndarray:
    """Multinomial logistic regression by full-batch gradient descent."""
    n, d = x_train.shape
    w = np.zeros((d + 1, NUM_BLOCKS))
    xb = np.hstack([x_train, np.ones((n, 1))])
    onehot = np.eye(NUM_BLOCKS)[y_train]
    for _ in range(steps):
        logits = xb @ w
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        grad = xb.T @ (p - onehot) / n + l2 * np.vstack([w[:-1], np.zeros((1, NUM_BLOCKS))])
        w -= lr * grad
    return (np.hstack([x_test, np.ones((len(x_test), 1))]) @ w).argmax(1)


def quadratic_softmax(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray
                      ) -> np.ndarray:
    """Softmax regression on the features and their pairwise products (standardised)."""
    rows, cols = np.triu_indices(x_train.shape[1])

    def expand(x: np.ndarray) -> np.ndarray:
        return np.hstack([x, x[:, rows] * x[:, cols]])

    a, b = standardise(expand(x_train), expand(x_test))
    return softmax_regression(a, y_train, b, l2=1e-3, steps=3000)


CLASSIFIERS: Dict[str, Callable] = {
    'nearest_centroid': nearest_centroid,
    'softmax_regression': softmax_regression,
    'quadratic_softmax': quadratic_softmax,
}


def score(features: np.ndarray, cache: TrialCache, seeds: List[int]) -> Dict[str, float]:
    """Return the mean test accuracy of each classifier over the paper split's seeds."""
    labels = np.asarray(cache.labels)
    out = {}
    for name, clf in CLASSIFIERS.items():
        if name == 'quadratic_softmax' and features.shape[1] > 64:
            continue  # pairwise products of a thumbnail: too many, and not the point
        accs = []
        for seed in seeds:
            train, test = paper_split(cache, seed=seed)
            x_tr, x_te = standardise(features[train], features[test])
            accs.append(float((clf(x_tr, labels[train], x_te) == labels[test]).mean()))
        out[name] = round(float(np.mean(accs)), 4)
    return out


def pre_motion_features(cache: TrialCache) -> np.ndarray:
    """Thumbnail of the mean of frames 0..9 plus their mean joints, per trial."""
    feats = []
    for i in range(len(cache)):
        onset = int(cache.true_start[i]) if cache.true_start[i] >= 0 else 10
        last = max(1, min(10, onset))
        mean_img = np.asarray(cache.frames[i, :last], dtype=np.float32).mean(0)
        thumb = cv2.resize(mean_img, (16, 16), interpolation=cv2.INTER_AREA).ravel()
        joints = np.asarray(cache.joints[i, :last]).mean(0).ravel()
        feats.append(np.concatenate([thumb / 255.0, joints]))
    return np.stack(feats)


def body_frame(joints: np.ndarray) -> np.ndarray:
    """
    Return the rows (right, up, forward) of the pitcher's frame seen in the rest pose.

    Right runs from the left to the right ankle (mean of frames 0..9, made level): the
    pitcher's stance, not the camera, fixes the direction of the targets.
    """
    rest = joints[:10].mean(0)
    right = rest[JOINT_INDEX['AnkleRight']] - rest[JOINT_INDEX['AnkleLeft']]
    right[1] = 0.0
    right /= np.linalg.norm(right)
    up = np.array([0.0, 1.0, 0.0])
    return np.stack([right, up, np.cross(up, right)])


def release_features(cache: TrialCache) -> np.ndarray:
    """Return the throwing hand's position and velocity around its peak speed (body frame)."""
    hand = JOINT_INDEX['HandRight']
    base = JOINT_INDEX['SpineBase']
    feats = []
    for i in range(len(cache)):
        joints = np.asarray(cache.joints[i], dtype=np.float64)
        p = (joints[:, hand] - joints[:10, base].mean(0)) @ body_frame(joints).T
        speed = np.linalg.norm(np.gradient(p, axis=0), axis=1)
        r = int(np.clip(np.argmax(speed[:-2]), 2, len(p) - 3))
        vel = (p[r + 1] - p[r - 1]) * 15.0
        unit = vel / (np.linalg.norm(vel) + 1e-9)
        feats.append(np.concatenate([p[r - 2:r + 3].ravel(), vel, unit,
                                     [np.linalg.norm(vel)]]))
    return np.stack(feats)


def exact_release_features(cache: TrialCache, layout: Path) -> np.ndarray:
    """Return the generator's exact release position and velocity (camera space)."""
    trials = read_meta(layout).get('trials', {})
    feats = []
    for trial_id in cache.trial_ids:
        meta = trials[trial_id]
        vel = np.array(meta['release_vel_cam'])
        feats.append(np.concatenate([meta['release_pos_cam'], vel,
                                     vel / np.linalg.norm(vel)]))
    return np.stack(feats)


def main(argv=None) -> int:
    """Run the check and print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cache', default='data/synthetic/cache_fast')
    parser.add_argument('--layout', default=None, help='layout with pitchsim.json (optional)')
    parser.add_argument('--splits', type=int, default=5, help='paper-split seeds to average')
    parser.add_argument('--out', default=None, help='write the JSON summary here too')
    args = parser.parse_args(argv)
    t0 = time.time()
    cache = TrialCache(args.cache)
    seeds = list(range(args.splits))
    result = {
        'trials': len(cache),
        'chance': round(1.0 / NUM_BLOCKS, 4),
        'pre_motion_accuracy': score(pre_motion_features(cache), cache, seeds),
        'release_kinematics_accuracy': score(release_features(cache), cache, seeds),
    }
    if args.layout:
        result['exact_release_state_accuracy'] = score(
            exact_release_features(cache, Path(args.layout)), cache, seeds)
    if (np.asarray(cache.true_start) >= 0).any():
        err = np.asarray(cache.start) - np.asarray(cache.true_start)
        result['detector_within_3_frames'] = round(float((np.abs(err) <= 3).mean()), 4)
        result['detector_found'] = round(float(np.asarray(cache.start_found).mean()), 4)
        result['detector_error_frames_hist'] = {
            int(k): int(v) for k, v in zip(*np.unique(err, return_counts=True))}
    result['seconds'] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    worst_pre = max(result['pre_motion_accuracy'].values())
    return 0 if worst_pre <= 0.2 else 1


if __name__ == '__main__':
    sys.exit(main())
