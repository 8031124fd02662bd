"""
Pitcher kinematics on the Kinect V2 25-joint skeleton, in the pitcher frame (metres).

The pitch is a set of keyframed tracks (pelvis, lead foot, trunk yaw/lean/tilt, both
hands) interpolated with cubic Hermite splines in time (frames since motion onset);
knees and elbows come from two-link inverse kinematics. Phases: rest, wind-up (hands
together, knee lift), stride and arm cocking, acceleration, release, follow-through,
then a balanced finish stance where the stride took the pitcher (pelvis forward, lead
foot planted at the stride, trail foot brought up or left, trunk upright, arms down),
as in [13]'s recordings, where the pitcher stands still where he ended up. The throwing
hand passes through the release point with the release velocity exactly, so the ball's
flight follows from the visible motion. :func:`plan_walk_back` keyframes the walk from
the finish stance back to the rest spot (continuous recordings only).
"""

from dataclasses import dataclass, field
import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from pitch_predictor.kinect import JOINT_INDEX, NUM_JOINTS

J = JOINT_INDEX


@dataclass(frozen=True)
class Participant:
    """One synthetic pitcher: body, style, skill and clothing."""

    name: str
    height: float  # m
    build: float  # width factor (shoulders, hips, limb thickness)
    tempo: float  # >1 is slower
    arm_slot: float  # 0 overhand .. 1 sidearm
    stride: float  # stride length as a fraction of height
    speed: float  # mean release speed, m/s
    aim_sigma_deg: float  # execution noise of elevation and azimuth
    speed_sigma: float  # relative execution noise of the speed
    lean_deg: float  # forward trunk lean at release
    knee_lift: float  # 0..1
    rest_style: str  # 'set' (hands together at the belt) or 'sides'
    finish_step: float = 0.6  # 0: trail foot left behind at the finish .. 1: brought up
    colours: Dict[str, Tuple[int, int, int]] = field(default_factory=dict)  # RGB
    long_sleeves: bool = True
    cap: bool = False


@dataclass
class Track:
    """Cubic Hermite track through keyframes; NaN velocities become Catmull-Rom tangents."""

    times: np.ndarray  # (K,)
    values: np.ndarray  # (K, D)
    velocities: np.ndarray  # (K, D), per frame

    @classmethod
    def build(cls, keys: Sequence[Tuple[float, Sequence[float], Optional[Sequence[float]]]]
              ) -> 'Track':
        """Build from ``(time, value, velocity or None)`` keys; ends default to rest."""
        times = np.array([k[0] for k in keys], dtype=float)
        values = np.array([np.atleast_1d(k[1]) for k in keys], dtype=float)
        vels = np.full_like(values, np.nan)
        for i, key in enumerate(keys):
            if key[2] is not None:
                vels[i] = key[2]
        vels[0] = np.where(np.isnan(vels[0]), 0.0, vels[0])
        vels[-1] = np.where(np.isnan(vels[-1]), 0.0, vels[-1])
        for i in range(1, len(keys) - 1):
            auto = (values[i + 1] - values[i - 1]) / (times[i + 1] - times[i - 1])
            vels[i] = np.where(np.isnan(vels[i]), auto, vels[i])
        return cls(times, values, vels)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Evaluate at times ``t`` (N,); constant before the first and after the last key."""
        t = np.asarray(t, dtype=float)
        tc = np.clip(t, self.times[0], self.times[-1])
        seg = np.clip(np.searchsorted(self.times, tc, side='right') - 1, 0, len(self.times) - 2)
        t0, t1 = self.times[seg], self.times[seg + 1]
        h = (t1 - t0)[:, None]
        s = ((tc - t0) / (t1 - t0))[:, None]
        h00 = 2 * s ** 3 - 3 * s ** 2 + 1
        h10 = s ** 3 - 2 * s ** 2 + s
        h01 = -2 * s ** 3 + 3 * s ** 2
        h11 = s ** 3 - s ** 2
        return (h00 * self.values[seg] + h10 * h * self.velocities[seg]
                + h01 * self.values[seg + 1] + h11 * h * self.velocities[seg + 1])


@dataclass(frozen=True)
class Segments:
    """Body segment lengths and offsets derived from height and build (metres)."""

    height: float
    build: float

    @property
    def thigh(self) -> float:  # noqa: D102
        return 0.245 * self.height

    @property
    def shank(self) -> float:  # noqa: D102
        return 0.246 * self.height

    @property
    def ankle_height(self) -> float:  # noqa: D102
        return 0.039 * self.height

    @property
    def pelvis_height(self) -> float:  # noqa: D102
        # Knees slightly bent at rest.
        return self.ankle_height + 0.985 * (self.thigh + self.shank) + 0.02 * self.height

    @property
    def upper_arm(self) -> float:  # noqa: D102
        return 0.172 * self.height

    @property
    def forearm(self) -> float:  # noqa: D102
        return 0.146 * self.height

    @property
    def hand(self) -> float:  # noqa: D102
        return 0.045 * self.height

    @property
    def arm(self) -> float:
        """Shoulder to hand centre, fully stretched."""
        return self.upper_arm + self.forearm + self.hand

    @property
    def shoulder_half(self) -> float:  # noqa: D102
        return 0.105 * self.height * self.build

    @property
    def hip_half(self) -> float:  # noqa: D102
        return 0.055 * self.height * self.build

    @property
    def foot_half(self) -> float:  # noqa: D102
        return 0.07 * self.height * self.build


def _rotations(yaw: np.ndarray, lean: np.ndarray, tilt: np.ndarray) -> np.ndarray:
    """
    Return (N, 3, 3) trunk rotations Ryaw @ Rlean @ Rtilt in (r, u, f) coordinates.

    yaw > 0 turns the throwing (right) shoulder back, lean > 0 tilts forward, tilt > 0
    tilts towards the glove side (raises the throwing shoulder). Angles in rad.
    """
    n = len(yaw)
    cy, sy = np.cos(yaw), np.sin(yaw)
    cl, sl = np.cos(lean), np.sin(lean)
    ct, st = np.cos(tilt), np.sin(tilt)
    zero, one = np.zeros(n), np.ones(n)
    r_yaw = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1),
                      np.stack([-sy, zero, cy], -1)], -2)
    r_lean = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cl, -sl], -1),
                       np.stack([zero, sl, cl], -1)], -2)
    r_tilt = np.stack([np.stack([ct, -st, zero], -1), np.stack([st, ct, zero], -1),
                       np.stack([zero, zero, one], -1)], -2)
    return r_yaw @ r_lean @ r_tilt


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def two_link(root: np.ndarray, target: np.ndarray, upper: float, lower: float,
             pole: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """
    Place the middle joint of a two-link chain; return (middle, reachable end), (N, 3).

    The end is pulled towards the root when the target is out of reach; the middle joint
    bends towards ``pole`` (a direction).
    """
    delta = target - root
    dist = np.linalg.norm(delta, axis=-1, keepdims=True)
    reach = np.clip(dist, abs(upper - lower) + 1e-4, upper + lower - 1e-4)
    axis = _unit(delta)
    end = root + axis * reach
    cos_a = np.clip((upper ** 2 + reach ** 2 - lower ** 2) / (2 * upper * reach), -1.0, 1.0)
    side = pole - np.sum(pole * axis, axis=-1, keepdims=True) * axis
    side = _unit(side)
    middle = root + upper * (cos_a * axis + np.sqrt(1 - cos_a ** 2) * side)
    return middle, end


@dataclass
class ThrowPlan:
    """Every keyframe of one pitch (pitcher frame; times in frames since onset)."""

    pelvis: Track
    lead_foot: Track
    trail_foot: Track
    trunk: Track  # (yaw, lean, tilt) in rad
    throw_hand: Track
    glove_hand: Track
    release_time: float  # frames since onset
    end_time: float  # the finish stance is reached (still from then on; may be after 90)
    release_pos: np.ndarray
    release_vel: np.ndarray  # m/s


def trunk_points(seg: Segments, pelvis: np.ndarray, rot: np.ndarray) -> Dict[str, np.ndarray]:
    """Return the spine, shoulder and head joints for pelvis positions and trunk rotations."""
    h = seg.height

    def place(offset: Sequence[float]) -> np.ndarray:
        return pelvis + rot @ np.asarray(offset, dtype=float)

    return {
        'SpineMid': place([0.0, 0.12 * h, -0.01 * h]),
        'SpineShoulder': place([0.0, 0.28 * h, -0.005 * h]),
        'Neck': place([0.0, 0.32 * h, 0.0]),
        'Head': place([0.0, 0.385 * h, 0.01 * h]),
        'ShoulderRight': place([seg.shoulder_half, 0.26 * h, -0.01 * h]),
        'ShoulderLeft': place([-seg.shoulder_half, 0.26 * h, -0.01 * h]),
    }


def plan_throw(person: Participant, seg: Segments, rng: np.random.Generator, *,
               tempo: float, release_vel: np.ndarray, release_noise: np.ndarray,
               aim_deg: Tuple[float, float], rest_jitter: np.ndarray) -> ThrowPlan:
    """
    Keyframe one pitch that releases with ``release_vel`` (m/s, pitcher frame).

    ``aim_deg``: the intended (elevation, azimuth) in degrees, which shapes the body
    (stride direction, trunk yaw and lean at release); ``release_noise``: (3,) m added
    to the release point; ``rest_jitter``: (8,) small rest-pose offsets, independent of
    the target. ``rng`` draws the remaining trial-to-trial variability.
    """
    h = seg.height
    elev_deg, azim_deg = aim_deg
    pb = seg.pelvis_height
    slot = person.arm_slot
    stride = person.stride * h * (1.0 + 0.04 * rng.standard_normal())
    lateral = 0.012 * azim_deg + 0.015 * rng.standard_normal()
    t_lift = 15.0 * tempo
    t_cock = t_lift + 6.0 * tempo

    rest_yaw, rest_lean = math.radians(rest_jitter[0] * 3.0), math.radians(rest_jitter[1] * 2.0)
    rest_pelvis = np.array([0.01 * rest_jitter[2], pb, 0.01 * rest_jitter[3]])
    rest_shift = 0.015 * rest_jitter[4:7]

    yaw_rel = math.radians(-10.0 + 1.4 * azim_deg + 3.0 * rng.standard_normal())
    lean_rel = math.radians(person.lean_deg - 1.2 * elev_deg + 2.0 * rng.standard_normal())
    tilt_rel = math.radians(22.0 * (1.0 - slot) + 2.0 * rng.standard_normal())
    angles_rel = np.array([yaw_rel, lean_rel, tilt_rel])
    angles_cock = np.radians([55.0 + 4.0 * rng.standard_normal(), 2.0, -8.0])
    pelvis_cock = np.array([0.03 + 0.5 * lateral, pb - 0.05, 0.40 * stride])
    pelvis_rel = np.array([0.02 + lateral, pb - 0.07, 0.55 * stride])
    pelvis_fin = np.array([lateral, pb - 0.06, 0.62 * stride])

    def shoulder(pelvis_pos: np.ndarray, angles: np.ndarray, name: str) -> np.ndarray:
        rot = _rotations(*(np.array([a]) for a in angles))
        return trunk_points(seg, pelvis_pos[None], rot)[name][0]

    shoulder_rel = shoulder(pelvis_rel, angles_rel, 'ShoulderRight')
    release_dir = _unit(np.array([0.1 + 0.65 * slot, 0.55 - 0.5 * slot, 0.83 - 0.17 * slot]))
    release_pos = shoulder_rel + 0.86 * seg.arm * release_dir + release_noise
    shoulder_cock = shoulder(pelvis_cock, angles_cock, 'ShoulderRight')
    cock_dir = _unit(np.array([0.35 + 0.5 * slot, 0.75 - 0.6 * slot, -0.55]))
    cock_pos = shoulder_cock + 0.8 * seg.arm * cock_dir
    chord = float(np.linalg.norm(release_pos - cock_pos))
    speed = float(np.linalg.norm(release_vel))
    # The hand accelerates from the cocked position to release speed: a cubic whose end
    # tangent is 1.6x the chord accelerates steadily without overshooting.
    t_rel = t_cock + 30.0 * 1.6 * chord / speed
    t_fin = t_rel + 7.0 * tempo
    t_mid = 0.5 * (t_lift + t_cock)

    # Finish stance: the lead foot stays planted at the stride, the trail foot comes up
    # by ``finish_step`` (towards a parallel stance), the pelvis settles between the feet,
    # the trunk straightens, the arms hang down. The settling is slow (1.3 s), so at the
    # end of the 3 s the pitcher is still easing into it, as in [13]'s plotted trial
    # (the displacement norm falls from its peak ~4.0 at frame ~61 to ~3.0-3.4 at 89).
    step = float(np.clip(person.finish_step + 0.1 * rng.standard_normal(), 0.0, 1.0))
    settle = 40.0 * tempo * (1.0 + 0.05 * rng.standard_normal())
    t_end = t_fin + settle
    fw = seg.foot_half
    ah = seg.ankle_height
    lead_fin = [-fw + 1.5 * lateral, ah, stride]
    trail_fin = [fw + 1.2 * lateral, ah, 0.45 * step * stride]
    pelvis_end = np.array([1.3 * lateral + 0.01 * rng.standard_normal(), pb - 0.015,
                           (0.66 + 0.08 * step) * stride + 0.02 * rng.standard_normal()])
    end_yaw = math.radians(-12.0 + 25.0 * step + 3.0 * rng.standard_normal())
    end_angles = [end_yaw, math.radians(4.0 + 2.0 * rng.standard_normal()), 0.0]

    pelvis = Track.build([
        (0.0, rest_pelvis, None),
        (t_lift, [0.02, pb + 0.005, 0.25 * stride], None),
        (t_cock, pelvis_cock, None),
        (t_rel, pelvis_rel, None),
        (t_fin, pelvis_fin, None),
        (t_end, pelvis_end, None),
    ])
    lead_rest = [-fw, ah, 0.0]
    zero3 = [0.0, 0.0, 0.0]
    lift = 0.10 + 0.12 * person.knee_lift
    lead_foot = Track.build([
        (0.0, lead_rest, None),
        (0.15 * t_lift, lead_rest, zero3),
        (t_lift, [-fw + 0.04, ah + lift, 0.12 * stride], None),
        (t_mid, [-fw + 0.5 * lateral, ah + 0.6 * lift, 0.5 * stride], None),
        (t_cock, lead_fin, zero3),
        (t_end, lead_fin, zero3),
    ])
    trail_rest = [fw, ah, 0.0]
    trail_mid = [fw - 0.03 + 0.6 * lateral, ah + 0.03 + 0.05 * step,
                 0.5 * (0.08 + trail_fin[2])]
    trail_foot = Track.build([
        (0.0, trail_rest, None),
        (t_rel, trail_rest, zero3),
        (t_fin, trail_mid, None),
        (t_end, trail_fin, zero3),
    ])
    trunk = Track.build([
        (0.0, [rest_yaw, rest_lean, 0.0], None),
        (t_lift, np.radians([45.0, -4.0, -3.0]), None),
        (t_cock, angles_cock, None),
        (t_rel, angles_rel, None),
        (t_fin, np.radians([-45.0, person.lean_deg + 12.0, 10.0]), None),
        (t_end, end_angles, None),
    ])
    if person.rest_style == 'set':
        throw_rest = np.array([0.03, 0.62 * h, 0.16]) + rest_shift
        glove_rest = np.array([-0.02, 0.62 * h, 0.18]) + rest_shift
    else:
        throw_rest = np.array([0.21 * person.build, 0.47 * h, 0.03]) + rest_shift
        glove_rest = np.array([-0.21 * person.build, 0.47 * h, 0.03]) + rest_shift
    throw_rest = throw_rest + rest_pelvis - [0.0, pb, 0.0]
    glove_rest = glove_rest + rest_pelvis - [0.0, pb, 0.0]
    # Arms down at the finish (the hands beside the hips, the glove a little in front).
    hang = pelvis_end - [0.0, pb, 0.0]
    throw_end = hang + [0.20 * person.build, 0.47 * h, 0.05]
    glove_end = hang + [-0.20 * person.build, 0.49 * h, 0.10]
    vel_frame = release_vel / 30.0
    throw_hand = Track.build([
        (0.0, throw_rest, None),
        (t_lift, [0.03, 0.80 * h, 0.17], None),
        (t_cock, cock_pos, [0.0, 0.02, -0.01]),
        (t_rel, release_pos, vel_frame),
        (t_fin, [pelvis_fin[0] - 0.30, 0.42 * h, pelvis_fin[2] + 0.40], [0.0, -0.01, 0.0]),
        (t_end, throw_end, None),
    ])
    shoulder_left_cock = shoulder(pelvis_cock, angles_cock, 'ShoulderLeft')
    glove_hand = Track.build([
        (0.0, glove_rest, None),
        (t_lift, [-0.02, 0.80 * h, 0.19], None),
        (t_cock, shoulder_left_cock + 0.75 * seg.arm * _unit(np.array([0.1, 0.25, 1.0])), None),
        (t_rel, [pelvis_rel[0] - 0.12, 0.70 * h, pelvis_rel[2] + 0.15], None),
        (t_fin, [pelvis_fin[0] - 0.18, 0.60 * h, pelvis_fin[2] + 0.10], None),
        (t_end, glove_end, None),
    ])
    return ThrowPlan(pelvis, lead_foot, trail_foot, trunk, throw_hand, glove_hand,
                     release_time=t_rel, end_time=t_end, release_pos=release_pos,
                     release_vel=np.asarray(release_vel, dtype=float))


def _foot_tip(ankle: np.ndarray, seg: Segments, yaw: np.ndarray) -> np.ndarray:
    forward = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], -1)
    tip = ankle + 0.10 * seg.height * forward
    tip[:, 1] = np.maximum(ankle[:, 1] - 0.7 * seg.ankle_height, 0.0)
    return tip


def _hand_joints(elbow: np.ndarray, hand: np.ndarray, seg: Segments, thumb_side: np.ndarray
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return wrist, hand tip and thumb from elbow and hand centre."""
    along = _unit(hand - elbow)
    wrist = hand - seg.hand * along
    tip = hand + 0.04 * seg.height * along
    side = _unit(np.cross(along, thumb_side))
    thumb = hand + 0.015 * seg.height * along + 0.025 * seg.height * side
    return wrist, tip, thumb


def pose(plan: ThrowPlan, seg: Segments, t: np.ndarray) -> np.ndarray:
    """Return the joints (N, 25, 3) of the pitcher frame at times ``t`` (frames since onset)."""
    t = np.asarray(t, dtype=float)
    n = len(t)
    joints = np.zeros((n, NUM_JOINTS, 3))
    pelvis = plan.pelvis(t)
    yaw, lean, tilt = plan.trunk(t).T
    rot = _rotations(yaw, lean, tilt)
    hip_rot = _rotations(0.45 * yaw, 0.3 * lean, np.zeros(n))
    joints[:, J['SpineBase']] = pelvis
    for name, points in trunk_points(seg, pelvis, rot).items():
        joints[:, J[name]] = points
    for side, sign in (('Right', 1.0), ('Left', -1.0)):
        hip = pelvis + hip_rot @ np.array([sign * seg.hip_half, -0.02 * seg.height, 0.0])
        joints[:, J['Hip' + side]] = hip
        foot_track = plan.trail_foot if side == 'Right' else plan.lead_foot
        ankle_target = foot_track(t)
        knee_pole = hip_rot @ np.array([0.15 * sign, 0.0, 1.0])
        knee, ankle = two_link(hip, ankle_target, seg.thigh, seg.shank, knee_pole)
        joints[:, J['Knee' + side]] = knee
        joints[:, J['Ankle' + side]] = ankle
        foot_yaw = 0.3 * yaw + sign * 0.25
        joints[:, J['Foot' + side]] = _foot_tip(ankle, seg, foot_yaw)
    up = np.array([0.0, 1.0, 0.0])
    arms = (('Right', plan.throw_hand, rot @ np.array([1.0, -0.35, -0.35])),
            ('Left', plan.glove_hand, rot @ np.array([-1.0, -0.6, 0.1])))
    for side, track, pole in arms:
        shoulder = joints[:, J['Shoulder' + side]]
        elbow, hand = two_link(shoulder, track(t), seg.upper_arm, seg.forearm + seg.hand, pole)
        wrist, tip, thumb = _hand_joints(elbow, hand, seg, up if side == 'Right' else -up)
        joints[:, J['Elbow' + side]] = elbow
        joints[:, J['Wrist' + side]] = wrist
        joints[:, J['Hand' + side]] = hand
        joints[:, J['HandTip' + side]] = tip
        joints[:, J['Thumb' + side]] = thumb
    return joints


def plan_walk_back(start: ThrowPlan, start_time: float, rest: ThrowPlan,
                   duration: float) -> ThrowPlan:
    """
    Keyframe the walk from ``start``'s pose at ``start_time`` back to ``rest``'s rest pose.

    Between pitches of a continuous recording: the lead foot steps back first (lifted,
    then planted at its rest spot), the trail foot follows; the pelvis and trunk glide
    back with a small bob, the arms go to their rest places. Times in frames since the
    start of the walk (0 .. ``duration``); still before and after.
    """
    t0 = np.array([float(start_time)])
    d = float(duration)
    zero3 = [0.0, 0.0, 0.0]

    def ends(track_a: Track, track_b: Track) -> Tuple[np.ndarray, np.ndarray]:
        return track_a(t0)[0], track_b(np.array([0.0]))[0]

    def glide(track_a: Track, track_b: Track, bob: Sequence[float] = (0.0, 0.0, 0.0)
              ) -> Track:
        a, b = ends(track_a, track_b)
        mid = 0.5 * (a + b) + np.asarray(bob, dtype=float)
        return Track.build([(0.0, a, None), (0.5 * d, mid, None), (d, b, None)])

    def stepping(track_a: Track, track_b: Track, lo: float, hi: float) -> Track:
        a, b = ends(track_a, track_b)
        lifted = 0.5 * (a + b)
        lifted[1] = max(a[1], b[1]) + 0.06
        keys = [(0.0, a, None), (lo * d, a, zero3), (0.5 * (lo + hi) * d, lifted, None),
                (hi * d, b, zero3), (d, b, zero3)]
        return Track.build(keys)

    pelvis = glide(start.pelvis, rest.pelvis, (0.0, 0.012, 0.0))
    lead = stepping(start.lead_foot, rest.lead_foot, 0.08, 0.55)
    trail = stepping(start.trail_foot, rest.trail_foot, 0.45, 0.85)
    trunk = glide(start.trunk, rest.trunk, (0.0, math.radians(-2.0), 0.0))
    throw_hand = glide(start.throw_hand, rest.throw_hand, (0.0, 0.02, 0.0))
    glove_hand = glide(start.glove_hand, rest.glove_hand, (0.0, 0.02, 0.0))
    return ThrowPlan(pelvis, lead, trail, trunk, throw_hand, glove_hand,
                     release_time=math.inf, end_time=d,
                     release_pos=np.full(3, np.nan), release_vel=np.zeros(3))
