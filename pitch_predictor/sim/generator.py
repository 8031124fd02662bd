"""
pitchsim: synthetic Kinect V2 pitching trials (RGB frames + 25 joints), by physics.

Recording protocol of [13] (``data_acquire/record_pitch_data.m`` of
linZHank/Intention_Prediction; see docs/data.md): the pitcher is given a target block,
throws, and the block actually hit is noted. A throw that hits the intended block is a
dataset trial (label = intended = actual block); a throw into another block is kept
apart, in the *miss set* (intended and actual block both recorded), and the pitcher
throws at the same target again; a throw off the grid is dropped. Colour frames are
stored at the recorder's 640x360 (1/3 of 1920x1080).

Two steps, both deterministic for a seed:

1. :func:`plan_dataset` (cheap, sequential): participants, sessions and every throw.
   Per participant, each target block still short of ``trials_per_block`` hits is
   thrown at, round after round; each throw's release point comes from the pitcher's
   body, its velocity from the aim that would hit the intended block centre plus
   execution noise (elevation, azimuth, speed, release point); the ball flies (gravity +
   drag) to the target plane, and the block it hits decides hit / miss / dropped.
2. :func:`render_trial` (the expensive part, run in a process pool by
   :func:`generate_trials`): the keyframed motion, Kinect joint noise, the rendered
   colour frames and their JPEG encoding (the Kinect colour stream is JPEG-compressed;
   the decoded JPEG *is* the frame, so every output holds the same pixels).

Nothing seen before the motion onset depends on the block: rest pose jitter, onset
time, session (camera placement, room, lighting) and noise are drawn independently of
it. After the follow-through the pitcher stands in his finish stance where the stride
took him until the end of the 90 frames (as in [13]'s ``dataset_utils/plotjposchange.py``
plot); :func:`render_walk_back` renders the walk back to the rest spot that continuous
recordings put between pitches.
"""

from dataclasses import asdict, dataclass, field, replace
import functools
import json
import math
import multiprocessing
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from pitch_predictor.kinect import FRAMES_PER_TRIAL, JOINT_INDEX, NUM_BLOCKS
from pitch_predictor.sim.body import (
    Participant, plan_throw, plan_walk_back, pose, Segments, ThrowPlan)
from pitch_predictor.sim.physics import (
    BallModel, fly_to_plane, GRAVITY, launch_velocity, solve_aim, TargetGrid)
from pitch_predictor.sim.render import (
    apply_lighting, Camera, make_background, PitcherRenderer, Session)

ONSET_MOVE_M = 0.02  # a joint moved this far from the rest pose = motion has started
ACTION_WINDOW = 40  # frames from the start that the networks see (must fit in the trial)
WALK_BACK_FRAMES = 40  # 1.33 s from the finish stance back to the rest spot


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines a synthetic dataset (default: the paper's 6 x 9 x 10)."""

    participants: int = 6
    trials_per_block: int = 10
    seed: int = 0
    width: int = 640  # the recorder's colour size (1920x1080 resized by 1/3)
    height: int = 360
    jpeg_quality: int = 90
    sessions_per_participant: int = 2
    grid: TargetGrid = field(default_factory=TargetGrid)
    ball: BallModel = field(default_factory=BallModel)
    joint_noise: float = 0.004  # m, Kinect joint jitter (white part)
    joint_drift: float = 0.003  # m, slowly varying part
    onset_range: Tuple[float, float] = (9.0, 34.0)  # frames (0-based time of motion onset)
    # The Kinect on a tripod, 4.2 m from the rest spot (2.8-4.45 m to the joints; body
    # tracking works to 4.5 m), so the whole pitcher, from the feet to the hand at the top
    # of the arm swing, stays inside the network's centre crop (docs/data.md).
    camera_distance: float = 3.8  # m from the look-at point, horizontally
    camera_angle_deg: float = 35.0  # camera direction, right of the throwing direction
    camera_height: float = 0.95  # m (a level camera: also the height it looks at)
    camera_look_at: Tuple[float, float] = (0.0, 0.45)  # (r, f) m, pitcher frame
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


class SpecFields:
    """The row fields of a trial with a ``spec`` (TrialSpec): id, block, pitcher, rank."""

    spec: TrialSpec

    @property
    def trial_id(self) -> str:  # noqa: D102
        return self.spec.trial_id

    @property
    def block(self) -> int:  # noqa: D102
        return self.spec.block

    @property
    def intended_block(self) -> int:  # noqa: D102
        return self.spec.intended_block

    @property
    def participant(self) -> str:  # noqa: D102
        return self.spec.person.name

    @property
    def trial_index(self) -> int:  # noqa: D102
        return self.spec.trial_index


@dataclass
class GeneratedTrial(SpecFields):
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
    config: Optional[SimConfig] = None  # the config it was rendered with (walk-backs)

    def walk_back(self, next_trial: Optional['GeneratedTrial'] = None,
                  frames: int = WALK_BACK_FRAMES) -> 'WalkBack':
        """Render the walk back to the rest spot after this trial (see render_walk_back)."""
        if self.config is None:
            raise ValueError(f'{self.trial_id}: rendered without its config, no walk-back')
        nxt = None if next_trial is None else next_trial.spec
        return render_walk_back(self.spec, self.config, nxt, frames, self.width, self.height)

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
    # Drawn apart, so the other traits stay those of earlier pitchsim versions.
    finish_steps = _spread(np.random.default_rng(np.random.SeedSequence([seed, 8])), count,
                           0.35, 0.75)
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
            rest_style=str(rng.choice(['set', 'sides'])),
            finish_step=float(finish_steps[i]), colours=colours,
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


def _stamp(index: int, session: int, throw: int) -> str:
    # One throw a minute from 09:00 (session 0) or 12:00 (session 1) of the pitcher's day.
    minute = 9 * 60 + 180 * session + throw
    return f'202601{10 + index:02d}{minute // 60:02d}{minute % 60:02d}'


def plan_participant(cfg: SimConfig, index: int, person: Participant,
                     include_misses: bool = False
                     ) -> Union[List[TrialSpec], Tuple[List[TrialSpec], List[TrialSpec]]]:
    """
    Throw at every block until it has ``trials_per_block`` hits; return the hits.

    [13]'s protocol: a throw aimed at block b that hits b is a dataset trial (``block``
    = ``intended_block`` = b, named ``intentBB_<pitcher>_<stamp>_trialKK`` for the k-th
    hit); a throw that lands in another block c is a miss (``intended_block`` b,
    ``block`` c, named like the hit it was aiming for, with its own stamp), and the
    pitcher throws at b again; a throw off the grid is dropped. Rounds: each round
    throws once at every block still short of hits, in a shuffled order.
    ``include_misses``: return ``(hits, misses)``.
    """
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
    hits_out: List[TrialSpec] = []
    misses: List[TrialSpec] = []
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
        points, _ = fly_to_plane(release, vel, grid.distance, ball)
        blocks = grid.block_at(np.nan_to_num(points[:, 0], nan=1e3),
                               np.nan_to_num(points[:, 1], nan=1e3))
        sessions = rng.integers(0, cfg.sessions_per_participant, len(batch))
        onset_u = rng.random(len(batch))
        for k, intended in enumerate(batch):
            throws += 1
            hit = int(blocks[k])
            if hit == 0:
                continue  # off the grid: dropped, the pitcher throws again
            session = int(sessions[k])
            number = counts[intended] + 1  # the hit this throw aims to be
            spec = TrialSpec(
                trial_id=f'intent{intended:02d}_{person.name}_{_stamp(index, session, throws)}'
                         f'_trial{number:02d}',
                participant_index=index, person=person, block=hit, intended_block=intended,
                trial_index=int(counts[intended]), session=session, seed=int(seeds[k]),
                onset=float(onset_u[k]), tempo=float(tempos[k]),
                aim_deg=tuple(float(v) for v in nominal_aim[intended - 1]),
                release_vel=tuple(float(v) for v in vel[k]),
                release_noise=tuple(float(v) for v in noises[k]),
                rest_jitter=tuple(float(v) for v in jitters[k]),
                hit_point=tuple(float(v) for v in points[k]))
            if hit == intended:
                hits_out.append(spec)
                counts[intended] += 1
            else:
                misses.append(spec)
    # A miss's trial_index: its rank among this pitcher's misses into the same block, by
    # throw order (as scan_dataset ranks a miss layout).
    misses.sort(key=lambda m: (m.block, m.trial_index, m.trial_id.split('_')[-2], m.trial_id))
    ranked: List[TrialSpec] = []
    for m in misses:
        ranked.append(replace(m, trial_index=sum(r.block == m.block for r in ranked)))
    if include_misses:
        return hits_out, ranked
    return hits_out


def _order(specs: List[TrialSpec]) -> List[TrialSpec]:
    return sorted(specs, key=lambda s: (s.participant_index, s.block, s.trial_index))


def plan_dataset(cfg: SimConfig, include_misses: bool = False
                 ) -> Union[List[TrialSpec], Tuple[List[TrialSpec], List[TrialSpec]]]:
    """
    Plan the dataset's trials (the hits), ordered by participant, block, trial index.

    ``include_misses``: return ``(hits, misses)``; the misses (see
    :func:`plan_participant`) in the same order, by the block they hit.
    """
    people = make_participants(cfg.participants, cfg.seed)
    hits: List[TrialSpec] = []
    misses: List[TrialSpec] = []
    for i, person in enumerate(people):
        own_hits, own_misses = plan_participant(cfg, i, person, include_misses=True)
        hits.extend(own_hits)
        misses.extend(own_misses)
    if include_misses:
        return _order(hits), _order(misses)
    return _order(hits)


@dataclass(frozen=True)
class PlannedTrial(SpecFields):
    """A planned trial as ``data.cache.build_cache`` takes it: ``load()`` renders it."""

    spec: TrialSpec
    config: SimConfig

    def load(self) -> Tuple[np.ndarray, np.ndarray, int]:
        """Render the trial; return (RGB frames, joints, true start)."""
        trial = render_trial(self.spec, self.config)
        return trial.frames(), trial.joints, trial.true_start


def planned_trials(cfg: SimConfig, misses: bool = False) -> List[PlannedTrial]:
    """
    Return the hits (``misses``: the miss set) of ``cfg``, to render into a cache.

    In the row order a layout of the same set gives (participant name, block, trial
    index), so a cache of the layout and one generated directly are equal.
    """
    specs = plan_dataset(cfg, include_misses=True)[1 if misses else 0]
    specs = sorted(specs, key=lambda s: (s.person.name, s.block, s.trial_index))
    return [PlannedTrial(spec, cfg) for spec in specs]


def config_dict(cfg: SimConfig) -> Dict[str, object]:
    """Return ``cfg`` as JSON-ready plain data (tuples as lists)."""
    values = asdict(cfg)
    return json.loads(json.dumps(values, default=lambda v: list(v) if isinstance(v, tuple)
                                 else str(v)))


def plan_misses(cfg: SimConfig) -> List[TrialSpec]:
    """Return the miss set of ``cfg`` (throws into another block than the intended one)."""
    return plan_dataset(cfg, include_misses=True)[1]


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
    look_r, look_f = cfg.camera_look_at
    camera = Camera(width, height, position=(look_r + dist * math.sin(angle), cam_h,
                                             look_f + dist * math.cos(angle)),
                    look_at=(look_r, cam_h, look_f))
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


def _onset_frame(spec: TrialSpec, cfg: SimConfig) -> float:
    # Late enough for the detector's rest reference, early enough that the 40-frame action
    # window (from the first moving frame, onset + 1 at the latest) ends by the last
    # frame. Drawn from the spec alone: the onset does not depend on the block.
    lo, hi = cfg.onset_range
    hi = min(hi, FRAMES_PER_TRIAL - ACTION_WINDOW - 1)
    return lo + spec.onset * max(hi - lo, 0.0)


@dataclass
class _Motion:
    plan: ThrowPlan
    seg: Segments
    onset: float
    local: np.ndarray  # (90, 25, 3) pitcher frame, noise-free
    ball: np.ndarray  # (90, 3) pitcher frame, NaN once out of the picture
    true_start: int


def _motion(spec: TrialSpec, cfg: SimConfig) -> _Motion:
    person = spec.person
    seg = Segments(person.height, person.build)
    plan = plan_throw(person, seg, np.random.default_rng(spec.seed), tempo=spec.tempo,
                      release_vel=np.array(spec.release_vel),
                      release_noise=np.array(spec.release_noise), aim_deg=spec.aim_deg,
                      rest_jitter=np.array(spec.rest_jitter))
    onset = _onset_frame(spec, cfg)
    t = np.arange(FRAMES_PER_TRIAL, dtype=float) - onset
    local = pose(plan, seg, t)
    moved = np.linalg.norm(local - local[:1], axis=-1).max(axis=1) > ONSET_MOVE_M
    true_start = int(np.argmax(moved)) if moved.any() else -1
    ball = local[:, JOINT_INDEX['HandRight']].copy()
    after = t - plan.release_time
    dt = after / 30.0
    rel_v = np.asarray(spec.release_vel)
    flying = (after > 0) & (after <= 2.0)
    ball[flying] = (plan.release_pos + rel_v * dt[flying, None]
                    - 0.5 * GRAVITY * np.array([0.0, 1.0, 0.0]) * dt[flying, None] ** 2)
    ball[after > 2.0] = np.nan
    return _Motion(plan, seg, onset, local, ball, true_start)


def _joint_noise(shape: Tuple[int, ...], cfg: SimConfig, rng: np.random.Generator
                 ) -> np.ndarray:
    # Kinect joint noise: white jitter plus a slow drift (AR(1)) per coordinate.
    drift = np.zeros(shape)
    state = cfg.joint_drift * rng.standard_normal(shape[1:])
    for f in range(shape[0]):
        state = 0.9 * state + math.sqrt(1 - 0.81) * cfg.joint_drift * rng.standard_normal(
            state.shape)
        drift[f] = state
    return drift + cfg.joint_noise * rng.standard_normal(shape)


def _render_frames(session: Session, person: Participant, joints_cam: np.ndarray,
                   ball_cam: np.ndarray, rng: np.random.Generator, quality: int,
                   first_index: int = 0) -> List[bytes]:
    renderer = PitcherRenderer(session, person.colours, person.height, person.long_sleeves,
                               person.cap)
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    jpegs = []
    for f in range(len(joints_cam)):
        rgb = renderer.render(joints_cam[f], ball_cam[f], first_index + f, rng)
        ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        jpegs.append(buf.tobytes())
    return jpegs


def render_trial(spec: TrialSpec, cfg: SimConfig, width: Optional[int] = None,
                 height: Optional[int] = None) -> GeneratedTrial:
    """Render one planned trial (frames at ``width`` x ``height``, default the config's)."""
    width = int(width or cfg.width)
    height = int(height or cfg.height)
    motion = _motion(spec, cfg)
    session = build_session(cfg, spec.participant_index, spec.session, width, height)
    camera = session.camera
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 31]))
    joints_cam = camera.to_camera(motion.local)
    ball_cam = camera.to_camera(motion.ball)
    jpegs = _render_frames(session, spec.person, joints_cam, ball_cam, rng, cfg.jpeg_quality)
    noisy = joints_cam + _joint_noise(joints_cam.shape, cfg, rng)
    plan = motion.plan
    return GeneratedTrial(
        spec=spec, joints=noisy.astype(np.float32), jpegs=jpegs,
        true_start=motion.true_start, release_frame=float(motion.onset + plan.release_time),
        release_pos_cam=camera.to_camera(plan.release_pos),
        release_vel_cam=camera.axes() @ np.asarray(spec.release_vel), width=width,
        height=height, config=cfg)


@dataclass
class WalkBack:
    """The frames after a trial in a continuous recording: the walk back to the rest spot."""

    joints: np.ndarray  # (N, 25, 3) float32, camera space, with sensor noise
    jpegs: List[bytes]


def render_walk_back(spec: TrialSpec, cfg: SimConfig, next_spec: Optional[TrialSpec] = None,
                     frames: int = WALK_BACK_FRAMES, width: Optional[int] = None,
                     height: Optional[int] = None) -> WalkBack:
    """
    Render the pitcher walking from ``spec``'s finish stance back to his rest spot.

    The walk ends in ``next_spec``'s rest pose when that is the same pitcher in the same
    session (the next pitch of a recording starts there), else in ``spec``'s own rest
    pose. Same session camera, room and renderer as the trial, so a recording that plays
    trial, walk-back and the next trial never jumps. ``frames``: the walk's length
    (the last 15 % of it is standing still).
    """
    width = int(width or cfg.width)
    height = int(height or cfg.height)
    motion = _motion(spec, cfg)
    target = motion
    if (next_spec is not None and next_spec.participant_index == spec.participant_index
            and next_spec.session == spec.session):
        target = _motion(next_spec, cfg)
    walk = plan_walk_back(motion.plan, FRAMES_PER_TRIAL - 1 - motion.onset, target.plan,
                          0.85 * frames)
    local = pose(walk, motion.seg, np.arange(1, frames + 1, dtype=float))
    session = build_session(cfg, spec.participant_index, spec.session, width, height)
    camera = session.camera
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 37]))
    joints_cam = camera.to_camera(local)
    no_ball = np.full((frames, 3), np.nan)
    jpegs = _render_frames(session, spec.person, joints_cam, no_ball, rng, cfg.jpeg_quality,
                           first_index=FRAMES_PER_TRIAL)
    noisy = joints_cam + _joint_noise(joints_cam.shape, cfg, rng)
    return WalkBack(joints=noisy.astype(np.float32), jpegs=jpegs)


def trial_geometry(spec: TrialSpec, cfg: SimConfig, width: Optional[int] = None,
                   height: Optional[int] = None) -> Tuple[Camera, np.ndarray, np.ndarray]:
    """
    Return (camera, joints, ball at release) of a trial without rendering it.

    ``joints``: noise-free camera-space joints (90, 25, 3); the ball (3,) at release.
    """
    width = int(width or cfg.width)
    height = int(height or cfg.height)
    motion = _motion(spec, cfg)
    camera = build_session(cfg, spec.participant_index, spec.session, width, height).camera
    return (camera, camera.to_camera(motion.local),
            camera.to_camera(motion.plan.release_pos))


def crop_box(camera: Camera, preprocess: Optional[object] = None
             ) -> Tuple[float, float, float, float]:
    """
    Return the network's centre crop (u0, v0, u1, v1) in pixel coordinates of ``camera``.

    The box of :func:`pitch_predictor.models.preprocessing.crop_box`, the one ``crop_frames``
    takes (``preprocess``: default the fast preset, the same field of view as the
    paper's: 240 of 640x360, 720 of 1920x1080).
    """
    from pitch_predictor.models import preprocessing
    x0, y0, side = preprocessing.crop_box(camera.width, camera.height,
                                          preprocess or preprocessing.fast_preprocess())
    return float(x0), float(y0), float(x0 + side), float(y0 + side)


def crop_share(points_cam: np.ndarray, camera: Camera, preprocess: Optional[object] = None,
               margin: float = 0.0) -> np.ndarray:
    """
    Return the share of projected points inside the centre crop, per frame.

    ``points_cam``: (..., P, 3) camera-space points (joints, with or without noise);
    returns (...,) in [0, 1]. ``margin``: a point counts as inside only at least this
    fraction of the crop side away from every crop edge. Pixel coordinates are
    :meth:`Camera.project`'s (pixel centres at integers), the box edges pixel borders.
    """
    u0, v0, u1, v1 = crop_box(camera, preprocess)
    pad = margin * (u1 - u0)
    uv = camera.project(np.asarray(points_cam, dtype=float)) + 0.5  # pixel borders
    inside = ((uv[..., 0] >= u0 + pad) & (uv[..., 0] <= u1 - pad)
              & (uv[..., 1] >= v0 + pad) & (uv[..., 1] <= v1 - pad))
    return inside.mean(axis=-1)


def crop_clearance(points_cam: np.ndarray, camera: Camera,
                   preprocess: Optional[object] = None) -> np.ndarray:
    """Return the smallest distance of the points to a crop edge per frame (crop sides)."""
    u0, v0, u1, v1 = crop_box(camera, preprocess)
    uv = camera.project(np.asarray(points_cam, dtype=float)) + 0.5
    gaps = np.stack([uv[..., 0] - u0, u1 - uv[..., 0], uv[..., 1] - v0, v1 - uv[..., 1]], -1)
    return gaps.min(axis=(-1, -2)) / (u1 - u0)


def framing(cfg: SimConfig, specs: Optional[Sequence[TrialSpec]] = None) -> Dict[str, float]:
    """
    Measure how the pitcher sits in the network crop over a set (no rendering).

    Per frame of every trial: the 25 noise-free joints plus the ball at release,
    projected with the trial's session camera. Returns the worst frame's share of points
    inside the crop (``worst_share``), the smallest clearance to a crop edge in crop
    sides (``min_clearance``, negative: outside) and the number of frames measured.
    """
    specs = list(plan_dataset(cfg) if specs is None else specs)
    worst, clearance, count = 1.0, math.inf, 0
    for spec in specs:
        camera, joints, ball = trial_geometry(spec, cfg)
        points = np.concatenate([joints, np.broadcast_to(ball, (len(joints), 1, 3))], 1)
        worst = min(worst, float(crop_share(points, camera).min()))
        clearance = min(clearance, float(crop_clearance(points, camera).min()))
        count += len(points)
    return {'worst_share': worst, 'min_clearance': clearance, 'frames': count}


def displacement_norm(joints: np.ndarray) -> np.ndarray:
    """Return ||joints_t - joints_0||_F over the 25 x 3 joints, per frame ([13]'s plot)."""
    joints = np.asarray(joints, dtype=np.float64)
    return np.linalg.norm((joints - joints[:1]).reshape(len(joints), -1), axis=1)


def end_to_peak(joints: np.ndarray) -> float:
    """Return the displacement norm at the last frame over its peak (about 0.8 in [13])."""
    norm = displacement_norm(joints)
    return float(norm[-1] / norm.max())


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
    bar = tqdm(total=len(jobs), desc=desc, unit='trial', disable=None if progress else True)
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
