"""pitchsim: determinism, the physics against textbook formulas, the trial timeline."""

from dataclasses import replace

import numpy as np
from pitch_predictor.kinect import FRAMES_PER_TRIAL, JOINT_INDEX
from pitch_predictor.sim.body import plan_throw, pose, Segments
from pitch_predictor.sim.generator import (
    make_participants, plan_dataset, render_trial, SimConfig, small_config)
from pitch_predictor.sim.physics import (
    BallModel, fly_to_plane, launch_velocity, solve_aim, TargetGrid)
from pitch_predictor.sim.render import Camera
import pytest

G = 9.81


@pytest.fixture(scope='module')
def tiny():
    """One participant, one trial per block, small frames (fast to render)."""
    cfg = small_config(width=213, height=120, seed=4)
    return cfg, plan_dataset(cfg)


def test_flight_without_drag_is_a_parabola():
    pos = np.array([[0.1, 1.8, 0.5], [-0.2, 1.5, 0.7]])
    vel = np.array([[0.5, 1.0, 10.0], [-1.0, -0.5, 8.0]])
    hit, when = fly_to_plane(pos, vel, 4.0, BallModel(drag=False))
    t = (4.0 - pos[:, 2]) / vel[:, 2]
    np.testing.assert_allclose(when, t, atol=1e-6)
    np.testing.assert_allclose(hit[:, 0], pos[:, 0] + vel[:, 0] * t, atol=1e-6)
    np.testing.assert_allclose(hit[:, 1], pos[:, 1] + vel[:, 1] * t - 0.5 * G * t ** 2,
                               atol=1e-5)


def test_drag_slows_the_ball():
    pos, vel = np.array([[0.0, 1.8, 0.0]]), np.array([[0.0, 0.0, 12.0]])
    _, t_free = fly_to_plane(pos, vel, 4.0, BallModel(drag=False))
    _, t_drag = fly_to_plane(pos, vel, 4.0, BallModel())
    assert t_drag[0] > t_free[0] * 1.01


def test_aim_hits_every_block_centre():
    grid, ball = TargetGrid(), BallModel()
    targets = np.stack([grid.block_centre(b) for b in range(1, 10)])
    release = np.tile([0.3, 1.9, 0.8], (9, 1))
    elev, azim = solve_aim(release, 11.0, targets, ball)
    hit, _ = fly_to_plane(release, launch_velocity(11.0, elev, azim), grid.distance, ball)
    np.testing.assert_allclose(hit[:, :2], targets[:, :2], atol=2e-3)
    assert list(grid.block_at(hit[:, 0], hit[:, 1])) == list(range(1, 10))
    # Fine-grained: neighbouring blocks are a few degrees apart in release angle.
    d_azim = np.degrees(np.abs(np.diff(azim.reshape(3, 3), axis=1)))
    d_elev = np.degrees(np.abs(np.diff(elev.reshape(3, 3), axis=0)))
    assert d_azim.min() > 2.0 and d_azim.max() < 8.0
    assert d_elev.min() > 2.0 and d_elev.max() < 8.0


def test_block_numbering_matches_kinect_module():
    grid = TargetGrid(block_size=0.3, centre_height=1.2, centre_lateral=0.0)
    # Pitcher's top-left (left = -r) is block 1, bottom-right is 9; off the grid is 0.
    assert grid.block_at(np.array([-0.3]), np.array([1.5]))[0] == 1
    assert grid.block_at(np.array([0.3]), np.array([1.5]))[0] == 3
    assert grid.block_at(np.array([0.0]), np.array([1.2]))[0] == 5
    assert grid.block_at(np.array([0.3]), np.array([0.9]))[0] == 9
    assert grid.block_at(np.array([0.5]), np.array([1.2]))[0] == 0
    assert grid.block_at(np.array([0.0]), np.array([0.7]))[0] == 0


def test_plan_is_deterministic_and_seed_dependent(tiny):
    cfg, specs = tiny
    assert plan_dataset(cfg) == specs
    assert plan_dataset(replace(cfg, seed=5)) != specs
    assert sorted(s.block for s in specs) == list(range(1, 10))


def test_labels_are_the_block_hit(tiny):
    cfg, specs = tiny
    for s in specs:
        assert cfg.grid.block_at(np.array([s.hit_point[0]]), np.array([s.hit_point[1]]))[0] \
            == s.block
        # Replaying the flight from the release state lands in the same block.
        seg = Segments(s.person.height, s.person.build)
        plan = plan_throw(s.person, seg, np.random.default_rng(s.seed), tempo=s.tempo,
                          release_vel=np.array(s.release_vel),
                          release_noise=np.array(s.release_noise), aim_deg=s.aim_deg,
                          rest_jitter=np.array(s.rest_jitter))
        hit, _ = fly_to_plane(plan.release_pos[None], np.array([s.release_vel]),
                              cfg.grid.distance, cfg.ball)
        np.testing.assert_allclose(hit[0], s.hit_point, atol=1e-9)


def test_execution_noise_sometimes_changes_the_block():
    specs = plan_dataset(SimConfig(participants=2, trials_per_block=4, seed=1))
    missed = np.mean([s.block != s.intended_block for s in specs])
    assert 0.02 < missed < 0.4


def test_render_is_deterministic(tiny):
    cfg, specs = tiny
    a = render_trial(specs[0], cfg)
    b = render_trial(specs[0], cfg)
    assert a.jpegs == b.jpegs
    np.testing.assert_array_equal(a.joints, b.joints)
    assert a.frames().shape == (FRAMES_PER_TRIAL, 120, 213, 3)
    c = render_trial(plan_dataset(replace(cfg, seed=5))[0], cfg)
    assert c.jpegs != a.jpegs


def test_trial_timeline(tiny):
    cfg, specs = tiny
    for s in specs[:3]:
        trial = render_trial(s, cfg)
        assert 10 <= trial.true_start <= 38
        assert trial.true_start < trial.release_frame < 80
        # Hand at release = release point; pre-onset frames are the rest pose.
        seg = Segments(s.person.height, s.person.build)
        plan = plan_throw(s.person, seg, np.random.default_rng(s.seed), tempo=s.tempo,
                          release_vel=np.array(s.release_vel),
                          release_noise=np.array(s.release_noise), aim_deg=s.aim_deg,
                          rest_jitter=np.array(s.rest_jitter))
        joints = pose(plan, seg, np.array([-5.0, 0.0, plan.release_time, plan.end_time]))
        np.testing.assert_allclose(joints[0], joints[1])
        np.testing.assert_allclose(joints[2, JOINT_INDEX['HandRight']], plan.release_pos,
                                   atol=1e-9)
        np.testing.assert_allclose(joints[3], joints[0], atol=1e-9)  # back at rest
        assert trial.release_frame - trial.true_start + s.onset < FRAMES_PER_TRIAL
        # Hand velocity from the keyframed motion equals the ball's release velocity.
        eps = 1e-4
        near = pose(plan, seg, np.array([plan.release_time - eps, plan.release_time + eps]))
        hand_vel = (near[1] - near[0])[JOINT_INDEX['HandRight']] / (2 * eps) * 30.0
        np.testing.assert_allclose(hand_vel, s.release_vel, rtol=1e-3, atol=1e-3)


def test_participants_are_distinct():
    people = make_participants(6, seed=0)
    for attr in ('height', 'tempo', 'arm_slot', 'stride', 'speed'):
        values = [getattr(p, attr) for p in people]
        assert len(set(np.round(values, 3))) == 6, attr
    assert len({p.colours['shirt'] for p in people}) == 6


def test_camera_follows_kinect_conventions():
    cam = Camera(426, 240, position=(0.0, 1.0, 3.0), look_at=(0.0, 1.0, 0.0))
    # The camera faces the pitcher: the pitcher's right (+r) is the sensor's left (+x),
    # which projects to the image's left half; up is up; depth is the distance.
    p = cam.to_camera(np.array([[0.5, 1.5, 0.0]]))[0]
    assert p[0] > 0 and p[1] > 0 and abs(p[2] - 3.0) < 1e-9
    u, v = cam.project(p)
    assert u < 212.5 and v < 119.5
    assert abs(cam.focal - 1081.37 * 240 / 1080) < 1e-9
