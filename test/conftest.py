"""Test session setup: isolate every ROS 2 test run from any other on the machine."""

import os
from pathlib import Path
import random
import sys

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# A distinct DDS domain per test session, localhost-only discovery: parallel runs
# (two CI jobs, a developer's shell) never see each other's topics. Only IDs 1..49:
# above 101 the domain's UDP ports fall into Linux's ephemeral range (intermittent
# failures), and pitch-eval draws its private domains from 50..101.
TEST_DOMAIN_IDS = (1, 49)
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(*TEST_DOMAIN_IDS)))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')

# One intra-op thread per process: tests start node and publisher processes beside
# pytest on a 2-core machine, where competing thread pools make small ops much slower.
os.environ.setdefault('OMP_NUM_THREADS', '1')


@pytest.fixture(scope='session')
def tiny_cache(tmp_path_factory) -> Path:
    """
    Return a tiny fast-preprocessed TrialCache: 1 participant x 9 blocks x 4 trials.

    Rendered at 213x120 (a third of pitchsim's 640x360 in each direction, same geometry):
    3.9 s instead of 11.4 s here. The crop (80 px) is upsampled to the stored 120 px, so
    the RGB frames are blurrier than the real recorder's; the tests using this cache
    check training's plumbing (splits, clips, resuming, fusion, calibration: mostly
    joints models), not what a model learns from the images. The joints do not depend
    on the frame size.
    """
    from pitch_predictor.data.cache import build_cache
    from pitch_predictor.models.preprocessing import fast_preprocess
    from pitch_predictor.sim.generator import planned_trials, small_config
    out = tmp_path_factory.mktemp('tiny_cache')
    build_cache(planned_trials(small_config(trials_per_block=4, seed=3, width=213, height=120)),
                out, fast_preprocess(), workers=1, progress=False)
    return out


@pytest.fixture(scope='session')
def torchvision_alexnet_file(tmp_path_factory) -> Path:
    """
    Return a file holding a torchvision AlexNet state dict (random, seed 0: no download).

    234 MB (the classifier is 94 % of it): written once per session, shared.
    """
    import torch
    from torchvision.models import alexnet
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('alexnet') / 'alexnet.pt'
    torch.save(alexnet(weights=None).state_dict(), path)
    return path
