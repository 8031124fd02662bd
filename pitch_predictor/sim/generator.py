"""
pitchsim: synthetic Kinect V2 pitching trials (RGB frames + 25 joints), by physics.

Two steps, both deterministic for a seed:

1. :func:`plan_dataset` (cheap, sequential): participants, sessions and every accepted
   throw. Per participant, throws are aimed at the blocks still short of
   ``trials_per_block``; each throw's release point comes from the pitcher's body, its
   velocity from the aim that would hit the intended block centre plus execution noise
   (elevation, azimuth, speed, release point); the ball flies (gravity + drag) to the
   target plane and the block it hits is the label. Throws that miss the grid, or land
   in a block that already has its trials, are thrown again (not kept).
2. :func:`render_trial` (the expensive part, run in a process pool by
   :func:`generate_trials`): the keyframed motion, Kinect joint noise, the rendered
   colour frames and their JPEG encoding (the Kinect colour stream is JPEG-compressed;
   the decoded JPEG *is* the frame, so every output holds the same pixels).

Nothing seen before the motion onset depends on the block: rest pose jitter, onset
time, session (camera placement, room, lighting) and noise are drawn independently of
it.
"""

from dataclasses import dataclass, field, replace
import functools
import math
import multiprocessing
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from pitch_predictor.kinect import FRAMES_PER_TRIAL, JOINT_INDEX, NUM_BLOCKS
from pitch_predictor.sim.body import Participant, plan_throw, pose, Segments
from pitch_predictor.sim.physics import (
    BallModel, fly_to_plane, GRAVITY, launch_velocity, solve_aim, TargetGrid)
from pitch_predictor.sim.render import (
    apply_lighting, Camera, make_background, PitcherRenderer, Session)

ONSET_MOVE_M = 0.02  # a joint moved this far from the rest pose = motion has started
LAST_REST_FRAME = 88  # the pitcher is back at rest by this frame (0-based)


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines a synthetic dataset (default: the paper's 6 x 9 x 10)."""

    participants: int = 6
    trials_per_block: int = 10
    seed: int = 0
    width: int = 426
    height: int = 240
    jpeg_quality: int = 90
    sessions_per_participant: int = 2
    grid: TargetGrid = field(default_factory=TargetGrid)
    ball: BallModel = field(default_factory=BallModel)
    joint_noise: float = 0.004  # m, Kinect joint jitter (white part)
    joint_drift: float = 0.003  # m, slowly varying part
    onset_range: Tuple[float, float] = (9.0, 34.0)  # frames (0-based time of motion onset)
    camera_distance: float = 3.1  # m from the pitcher
    camera_angle_deg: float = 35.0  # camera direction, right of the throwing direction
    camera_height: float = 1.0  # m
    noise_sigma: float = 2.0  # sensor noise, grey levels
    flicker: float = 0.003  # lamp flicker amplitude (relative)


@dataclass(frozen=True)
class TrialSpec:
    """One accepted throw: all that is needed to render it (small, picklable)."""

    trial_id: str
    participant_index: int
    person: Participant
    block: int  # block hit = label (1..9)
    intended_block: int
    trial_index: int  # 0-based index among this participant's trials of this block
    session: int
    seed: int
    onset: float  # frames, 0-based time of motion onset
    tempo: float
    aim_deg: Tuple[float, float]  # intended (elevation, azimuth)
    release_vel: Tuple[float, float, float]  # m/s, pitcher frame
    release_noise: Tuple[float, float, float]
    rest_jitter: Tuple[float, ...]
    hit_point: Tuple[float, float, float]  # pitcher frame


@dataclass
class GeneratedTrial:
    """A rendered trial: JPEG frames, noisy Kinect joints, and the ground truth."""

    spec: TrialSpec
    joints: np.ndarray  # (90, 25, 3) float32, Kinect camera space, with sensor noise
    jpegs: List[bytes]  # the colour frames as the Kinect delivers them (JPEG)
    true_start: int  # 0-based first frame in which the pitcher has left the rest pose
    release_frame: float  # fractional frame index of the ball release
    release_pos_cam: np.ndarray  # (3,) camera space
    release_vel_cam: np.ndarray  # (3,) camera space, m/s
    width: int
    height: int

    @property
    def trial_id(self) -> str:  # noqa: D102
        return self.spec.trial_id

    @property
    def block(self) -> int:  # noqa: D102
        return self.spec.block

    @property
    def participant(self) -> str:  # noqa: D102
        return self.spec.person.name

    def frames(self) -> np.ndarray:
        """Decode the JPEG frames: RGB uint8 (90, H, W, 3)."""
        return np.stack([decode_jpeg(b) for b in self.jpegs])

    def meta(self) -> Dict[str, object]:
        """Return the ground truth as JSON-ready values."""
        s = self.spec
        return {
            'trial_id': s.trial_id, 'participant': s.person.name, 'block': s.block,
            'intended_block': s.intended_block, 'trial_index': s.trial_index,
            'session': s.session, 'true_start': self.true_start,
            'onset_frame': s.onset, 'release_frame': self.release_frame,
            'release_pos_cam': [float(v) for v in self.release_pos_cam],
            'release_vel_cam': [float(v) for v in self.release_vel_cam],
            'hit_point': [float(v) for v in s.hit_point],
        }


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to RGB uint8 (H, W, 3)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _spread(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """Return n values spread over [lo, hi] (one per stratum, shuffled): distinct people."""
    return lo + (hi - lo) * (rng.permutation(n) + rng.uniform(0.15, 0.85, n)) / n


_SKIN = ((233, 196, 166), (210, 160, 120), (170, 120, 85), (120, 80, 55), (245, 210, 185))
_HAIR = ((30, 25, 20), (90, 60, 35), (160, 120, 70), (60, 60, 60), (20, 20, 60))


def _hsv_colour(rng: np.random.Generator, sat: Tuple[float, float],
                val: Tuple[float, float]) -> Tuple[int, int, int]:
    hsv = np.uint8([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(int(v) for v in rgb)


def make_participants(count: int, seed: int) -> List[Participant]:
    """Draw ``count`` distinct pitchers (body, tempo, arm slot, stride, skill, clothes)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    heights = _spread(rng, count, 1.60, 1.92)
    tempos = _spread(rng, count, 0.88, 1.12)
    slots = _spread(rng, count, 0.0, 0.7)
    strides = _spread(rng, count, 0.32, 0.48)
    speeds = _spread(rng, count, 9.0, 12.5)
    people = []
    for i in range(count):
        shirt = _hsv_colour(rng, (0.35, 0.9), (0.35, 0.9))
        bright = sum(shirt) / 3.0 > 128
        colours = {
            'shirt': shirt,
            'undershirt': _hsv_colour(rng, (0.0, 0.7), (0.1, 0.3) if bright else (0.75, 0.95)),
            'pants': _hsv_colour(rng, (0.1, 0.6), (0.15, 0.55)),
            'shoes': _hsv_colour(rng, (0.0, 0.4), (0.2, 0.95)),
            'skin': _SKIN[int(rng.integers(len(_SKIN)))],
            'hair': _HAIR[int(rng.integers(len(_HAIR)))],
            'glove': (int(rng.uniform(90, 150)), int(rng.uniform(50, 80)),
                      int(rng.uniform(20, 45))),
        }
        people.append(Participant(
            name=f'P{i + 1}', height=float(heights[i]), build=float(rng.uniform(0.9, 1.15)),
            tempo=float(tempos[i]), arm_slot=float(slots[i]), stride=float(strides[i]),
            speed=float(speeds[i]), aim_sigma_deg=float(rng.uniform(1.5, 2.3)),
            speed_sigma=float(rng.uniform(0.02, 0.035)), lean_deg=float(rng.uniform(12, 25)),
            knee_lift=float(rng.uniform(0.2, 1.0)),
            rest_style=str(rng.choice(['set', 'sides'])), colours=colours,
            long_sleeves=bool(rng.random() < 0.5), cap=bool(rng.random() < 0.4)))
    return people


def _release_point(person: Participant, seg: Segments, seed: int, tempo: float,
                   aim_deg: Tuple[float, float], noise: np.ndarray,
                   jitter: np.ndarray) -> np.ndarray:
    # The release point depends on the body only, not on the release velocity.
    plan = plan_throw(person, seg, np.random.default_rng(seed), tempo=tempo,
                      release_vel=np.array([0.0, 0.0, person.speed]), release_noise=noise,
                      aim_deg=aim_deg, rest_jitter=jitter)
    return plan.release_pos


def plan_participant(cfg: SimConfig, index: int, person: Participant) -> List[TrialSpec]:
    """Throw until every block has ``trials_per_block`` hits; return the accepted throws."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 11, index]))
    seg = Segments(person.height, person.build)
    grid, ball = cfg.grid, cfg.ball
    centres = np.stack([grid.block_centre(b) for b in range(1, NUM_BLOCKS + 1)])
    nominal = _release_point(person, seg, 0, person.tempo, (0.0, 0.0), np.zeros(3),
                             np.zeros(8))
    elev0, azim0 = solve_aim(np.repeat(nominal[None], NUM_BLOCKS, 0), person.speed, centres,
                             ball)
    nominal_aim = np.degrees(np.stack([elev0, azim0], -1))
    counts = np.zeros(NUM_BLOCKS + 1, int)
    accepted: List[TrialSpec] = []
    sigma = math.radians(person.aim_sigma_deg)
    throws = 0
    while counts[1:].min() < cfg.trials_per_block:
        needed = [b for b in range(1, NUM_BLOCKS + 1) if counts[b] < cfg.trials_per_block]
        batch = [int(b) for b in rng.permutation(needed)]
        seeds = rng.integers(0, 2 ** 31 - 1, len(batch))
        tempos = person.tempo * (1.0 + 0.04 * rng.standard_normal(len(batch)))
        noises = 0.015 * rng.standard_normal((len(batch), 3))
        jitters = rng.standard_normal((len(batch), 8))
        release = np.stack([
            _release_point(person, seg, int(seeds[k]), float(tempos[k]),
                           tuple(nominal_aim[b - 1]), noises[k], jitters[k])
            for k, b in enumerate(batch)])
        targets = centres[np.array(batch) - 1]
        elev, azim = solve_aim(release - noises, person.speed, targets, ball)
        elev = elev + sigma * rng.standard_normal(len(batch))
        azim = azim + sigma * rng.standard_normal(len(batch))
        speed = person.speed * (1.0 + person.speed_sigma * rng.standard_normal(len(batch)))
        vel = launch_velocity(speed, elev, azim)
        hits, _ = fly_to_plane(release, vel, grid.distance, ball)
        blocks = grid.block_at(np.nan_to_num(hits[:, 0], nan=1e3),
                               np.nan_to_num(hits[:, 1], nan=1e3))
        sessions = rng.integers(0, cfg.sessions_per_participant, len(batch))
        onset_u = rng.random(len(batch))
        for k, intended in enumerate(batch):
            throws += 1
            hit = int(blocks[k])
            if hit == 0 or counts[hit] >= cfg.trials_per_block:
                continue  # missed the grid or a full block: the pitcher throws again
            session = int(sessions[k])
            minute = 9 * 60 + 180 * session + throws // 2
            stamp = f'202601{10 + index:02d}{minute // 60:02d}{minute % 60:02d}'
            accepted.append(TrialSpec(
                trial_id=f'intent{hit:02d}_{person.name}_{stamp}_trial{counts[hit] + 1:02d}',
                participant_index=index, person=person, block=hit, intended_block=intended,
                trial_index=int(counts[hit]), session=session, seed=int(seeds[k]),
                onset=float(onset_u[k]), tempo=float(tempos[k]),
                aim_deg=tuple(float(v) for v in nominal_aim[intended - 1]),
                release_vel=tuple(float(v) for v in vel[k]),
                release_noise=tuple(float(v) for v in noises[k]),
                rest_jitter=tuple(float(v) for v in jitters[k]),
                hit_point=tuple(float(v) for v in hits[k])))
            counts[hit] += 1
    return accepted


def plan_dataset(cfg: SimConfig) -> List[TrialSpec]:
    """Plan every trial of the dataset, ordered by participant, block, trial index."""
    people = make_participants(cfg.participants, cfg.seed)
    specs: List[TrialSpec] = []
    for i, person in enumerate(people):
        specs.extend(plan_participant(cfg, i, person))
    return sorted(specs, key=lambda s: (s.participant_index, s.block, s.trial_index))


@functools.lru_cache(maxsize=16)
def build_session(cfg: SimConfig, participant_index: int, session: int, width: int,
                  height: int) -> Session:
    """Return a session's camera, lit room and lighting (same for every trial in it)."""
    rng = np.random.default_rng(np.random.SeedSequence(
        [cfg.seed, 23, participant_index, session]))
    # The tripod goes back to a marked spot each session: small placement differences.
    angle = math.radians(cfg.camera_angle_deg + rng.uniform(-1.0, 1.0))
    dist = cfg.camera_distance + rng.uniform(-0.05, 0.05)
    cam_h = cfg.camera_height + rng.uniform(-0.03, 0.03)
    camera = Camera(width, height, position=(dist * math.sin(angle), cam_h,
                                             dist * math.cos(angle)),
                    look_at=(0.1, cam_h, 0.35))
    room_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 29, participant_index,
                                                             session]))
    room = make_background(width, height, camera, room_rng)
    gain = rng.uniform(0.8, 1.15) * rng.uniform(0.92, 1.08, 3)
    light_x = float(rng.choice([-1.0, 1.0]))
    background = apply_lighting(room, gain, light_x)
    return Session(camera=camera, background=background, light_gain=gain,
                   light_dir=(light_x, -1.0), flicker_amp=cfg.flicker * rng.uniform(0.5, 1.0),
                   flicker_freq=rng.uniform(0.02, 0.2), flicker_phase=rng.uniform(0, 2 * np.pi),
                   noise_sigma=cfg.noise_sigma)


def _onset_frame(spec: TrialSpec, end_time: float, cfg: SimConfig) -> float:
    lo, hi = cfg.onset_range
    hi = min(hi, LAST_REST_FRAME - end_time)
    return lo + spec.onset * max(hi - lo, 0.0)


def render_trial(spec: TrialSpec, cfg: SimConfig, width: Optional[int] = None,
                 height: Optional[int] = None) -> GeneratedTrial:
    """Render one planned trial (frames at ``width`` x ``height``, default the config's)."""
    width = int(width or cfg.width)
    height = int(height or cfg.height)
    person = spec.person
    seg = Segments(person.height, person.build)
    plan = plan_throw(person, seg, np.random.default_rng(spec.seed), tempo=spec.tempo,
                      release_vel=np.array(spec.release_vel),
                      release_noise=np.array(spec.release_noise), aim_deg=spec.aim_deg,
                      rest_jitter=np.array(spec.rest_jitter))
    onset = _onset_frame(spec, plan.end_time, cfg)
    frames = np.arange(FRAMES_PER_TRIAL, dtype=float)
    t = frames - onset
    local = pose(plan, seg, t)
    moved = np.linalg.norm(local - local[:1], axis=-1).max(axis=1) > ONSET_MOVE_M
    true_start = int(np.argmax(moved)) if moved.any() else -1

    session = build_session(cfg, spec.participant_index, spec.session, width, height)
    camera = session.camera
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 31]))
    ball = local[:, JOINT_INDEX['HandRight']].copy()
    after = t - plan.release_time
    dt = after / 30.0
    rel_v = np.asarray(spec.release_vel)
    flying = (after > 0) & (after <= 2.0)
    ball[flying] = (plan.release_pos + rel_v * dt[flying, None]
                    - 0.5 * GRAVITY * np.array([0.0, 1.0, 0.0]) * dt[flying, None] ** 2)
    ball[after > 2.0] = np.nan
    joints_cam = camera.to_camera(local)
    ball_cam = camera.to_camera(ball)
    renderer = PitcherRenderer(session, person.colours, person.height, person.long_sleeves,
                               person.cap)
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(cfg.jpeg_quality)]
    jpegs = []
    for f in range(FRAMES_PER_TRIAL):
        rgb = renderer.render(joints_cam[f], ball_cam[f], f, rng)
        ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        jpegs.append(buf.tobytes())

    # Kinect joint noise: white jitter plus a slow drift (AR(1)) per coordinate.
    drift = np.zeros_like(joints_cam)
    state = cfg.joint_drift * rng.standard_normal(joints_cam.shape[1:])
    for f in range(FRAMES_PER_TRIAL):
        state = 0.9 * state + math.sqrt(1 - 0.81) * cfg.joint_drift * rng.standard_normal(
            state.shape)
        drift[f] = state
    noisy = joints_cam + drift + cfg.joint_noise * rng.standard_normal(joints_cam.shape)
    axes = camera.axes()
    return GeneratedTrial(
        spec=spec, joints=noisy.astype(np.float32), jpegs=jpegs, true_start=true_start,
        release_frame=float(onset + plan.release_time),
        release_pos_cam=camera.to_camera(plan.release_pos), release_vel_cam=axes @ rel_v,
        width=width, height=height)


def _render_job(args: Tuple[TrialSpec, SimConfig, Optional[int], Optional[int]]
                ) -> GeneratedTrial:
    return render_trial(*args)


def generate_trials(cfg: SimConfig, specs: Optional[Sequence[TrialSpec]] = None, *,
                    workers: int = 2, width: Optional[int] = None,
                    height: Optional[int] = None, progress: bool = True,
                    desc: str = 'pitchsim') -> Iterator[GeneratedTrial]:
    """Render trials (all planned ones by default) in a pool, yielding them in order."""
    from tqdm import tqdm

    specs = list(plan_dataset(cfg) if specs is None else specs)
    jobs = [(s, cfg, width, height) for s in specs]
    bar = tqdm(total=len(jobs), desc=desc, unit='trial', disable=not progress)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield _render_job(job)
                bar.update(1)
            return
        ctx = multiprocessing.get_context('fork' if os.name == 'posix' else 'spawn')
        with ctx.Pool(workers) as pool:
            for trial in pool.imap(_render_job, jobs, chunksize=2):
                yield trial
                bar.update(1)
    finally:
        bar.close()


def small_config(**overrides: object) -> SimConfig:
    """Return a config for quick checks (1 participant, 1 trial per block)."""
    return replace(SimConfig(participants=1, trials_per_block=1), **overrides)
