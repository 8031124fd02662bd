"""
Joint features in a pitcher-centred body frame: one source of truth for every joints model.

Input: Kinect camera-space joints ``(..., 25, 3)`` in metres (x to the sensor's left,
y up, z away from the sensor), in the SDK order of :mod:`pitch_predictor.kinect`. NaN marks
a missing joint; a missing frame is a whole skeleton of NaN.

The body frame is fixed once per clip at the *reference frame*: the clip's first frame
whose skeleton has SpineBase, SpineShoulder and at least one of the hip or shoulder pairs
(the pitcher stands still at rest there: the clip starts at the detected start frame).
Measured on that frame:

- origin: SpineBase,
- right axis: the sum of the hips' and the shoulders' left-to-right vectors (HipRight -
  HipLeft, ShoulderRight - ShoulderLeft; a pair counts only if both joints are there),
  projected on the horizontal plane (Kinect y is up) and normalised,
- up axis: Kinect y; forward axis: up x right (the way the pitcher faces),
- scale: the torso length |SpineShoulder - SpineBase| (about 0.5 m for an adult).

Every frame of the clip is expressed in that one frame: ``(right, up, forward) / scale``,
so the features do not depend on where the camera stands (position, heading) or on how
tall the pitcher is, while the motion (including turning and stepping) stays visible.

Per frame and joint, :data:`FEATURES_PER_JOINT` = 7 values (:data:`FEATURE_NAMES`):
position (3), velocity (3: the position minus the previous clip frame's, per sampled
step, not per second) and validity (1). A joint that is missing, or any joint before the
reference frame (no body frame yet), gets zeros with validity 0; a velocity is 0 unless
the joint is valid in both frames. Without any valid reference frame the whole clip is
zeros: the models still run and the caller decides what such a window means.

:func:`centred_joint_features` does a whole clip; :func:`init_feature_state` and
:func:`centred_joint_features_step` do the same one frame at a time (streaming) and give
the same values. Both only use ``torch.where`` on NaN, never arithmetic, so no NaN reaches
the output and the ONNX graph takes NaN joints as they are.

*What the colour camera sees of the joints* (kinds ``'image'`` and ``'image_velocity'``,
:func:`image_joint_features`): the same joints through a pinhole, without their depth,
to measure how much of the label a camera's 2D view holds (the ceiling of any image
network that localises the body perfectly; docs/training.md, "What limits the RGB
networks"). Per joint: the normalised image coordinates ``(x / z, y / z)`` (camera axes;
independent of the focal length and the image size) minus the reference frame's
SpineBase, divided by the reference frame's projected torso length, their change from
the previous clip frame, and validity (5 values, :data:`IMAGE_FEATURE_NAMES`). A joint
closer than :data:`MIN_DEPTH` to the sensor counts as missing. Camera-placement
augmentation (``training/joint_augment.py``) acts on the 3D joints before projection,
as a camera placed elsewhere would.
"""

from dataclasses import dataclass
from typing import Tuple

from pitch_predictor.kinect import JOINT_INDEX, NUM_JOINTS
import torch

FEATURE_NAMES = ('x', 'y', 'z', 'vx', 'vy', 'vz', 'valid')
FEATURES_PER_JOINT = len(FEATURE_NAMES)
FEATURES_PER_FRAME = NUM_JOINTS * FEATURES_PER_JOINT

# Named channel selections of the 7 per joint (the models' ``features`` config values):
# 'centred' every channel, 'centred_velocity' velocity and validity only; the 'metric'
# kinds are the same channels in metres (no division by the torso length): the ball's
# flight depends on the absolute release height and speed, which the scale would fold
# into the pitcher's size.
CHANNELS = {'centred': FEATURE_NAMES, 'centred_velocity': ('vx', 'vy', 'vz', 'valid'),
            'metric': FEATURE_NAMES, 'metric_velocity': ('vx', 'vy', 'vz', 'valid')}
UNSCALED = ('metric', 'metric_velocity')

IMAGE_FEATURE_NAMES = ('u', 'v', 'du', 'dv', 'valid')
IMAGE_CHANNELS = {'image': IMAGE_FEATURE_NAMES, 'image_velocity': ('du', 'dv', 'valid')}
MIN_DEPTH = 0.1  # metres: a joint nearer the sensor than this is a tracking failure

SPINE_BASE = JOINT_INDEX['SpineBase']
SPINE_SHOULDER = JOINT_INDEX['SpineShoulder']
LEFT_RIGHT_PAIRS = ((JOINT_INDEX['HipLeft'], JOINT_INDEX['HipRight']),
                    (JOINT_INDEX['ShoulderLeft'], JOINT_INDEX['ShoulderRight']))

# A reference frame needs a torso longer than this and a left-right axis whose
# horizontal part is longer than this (metres); shorter ones are tracking failures.
MIN_TORSO = 0.05
MIN_AXIS = 1e-3


def joint_validity(joints: torch.Tensor) -> torch.Tensor:
    """Return which joints are present: ``(..., 25, 3) -> (..., 25)`` bool (no NaN)."""
    return ~torch.isnan(joints).any(dim=-1)


def _zero_missing(joints: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid.unsqueeze(-1), joints, torch.zeros_like(joints))


def body_frame(joints: torch.Tensor, valid: torch.Tensor
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Measure the body frame every skeleton would give if it were the reference.

    ``joints`` ``(..., 25, 3)`` with missing joints already zero, ``valid`` ``(..., 25)``.
    Returns ``origin (..., 3)``, ``right (..., 2)`` (the unit right axis's x and z),
    ``scale (...)`` and ``ok (...)`` (bool: this skeleton can be a reference). Where
    ``ok`` is False the other values are finite placeholders.
    """
    origin = joints[..., SPINE_BASE, :]
    axis = torch.zeros_like(origin)
    has_pair = torch.zeros_like(valid[..., 0])
    for left, right in LEFT_RIGHT_PAIRS:
        both = valid[..., left] & valid[..., right]
        vector = joints[..., right, :] - joints[..., left, :]
        axis = axis + torch.where(both.unsqueeze(-1), vector, torch.zeros_like(vector))
        has_pair = has_pair | both
    flat = torch.stack([axis[..., 0], axis[..., 2]], dim=-1)  # horizontal part (x, z)
    length = flat.norm(dim=-1)
    unit = flat / length.clamp(min=MIN_AXIS).unsqueeze(-1)
    torso = (joints[..., SPINE_SHOULDER, :] - origin).norm(dim=-1)
    ok = (valid[..., SPINE_BASE] & valid[..., SPINE_SHOULDER] & has_pair
          & (length > MIN_AXIS) & (torso > MIN_TORSO))
    # Placeholders keep every later division finite where ok is False.
    unit = torch.where(ok.unsqueeze(-1), unit, torch.tensor([1.0, 0.0]).to(unit))
    scale = torch.where(ok, torso, torch.ones_like(torso))
    return origin, unit, scale, ok


def to_body_frame(joints: torch.Tensor, origin: torch.Tensor, right: torch.Tensor,
                  scale: torch.Tensor) -> torch.Tensor:
    """
    Express joints ``(..., 25, 3)`` in a body frame: ``(right, up, forward) / scale``.

    ``origin (..., 3)``, ``right (..., 2)`` (unit x, z of the right axis) and ``scale
    (...)`` broadcast over the joints. forward = up x right = (right_z, 0, -right_x).
    """
    offset = joints - origin.unsqueeze(-2)
    cos, sin = right[..., 0:1], right[..., 1:2]  # (..., 1), broadcast over joints
    lateral = offset[..., 0] * cos + offset[..., 2] * sin
    forward = offset[..., 0] * sin - offset[..., 2] * cos
    local = torch.stack([lateral, offset[..., 1], forward], dim=-1)
    return local / scale.unsqueeze(-1).unsqueeze(-1)


def _assemble(position: torch.Tensor, valid: torch.Tensor, previous: torch.Tensor,
              previous_valid: torch.Tensor) -> torch.Tensor:
    position = torch.where(valid.unsqueeze(-1), position, torch.zeros_like(position))
    both = (valid & previous_valid).unsqueeze(-1)
    velocity = torch.where(both, position - previous, torch.zeros_like(position))
    return torch.cat([position, velocity, valid.unsqueeze(-1).to(position.dtype)], dim=-1)


def _measure(joints: torch.Tensor, scaled: bool) -> Tuple[torch.Tensor, ...]:
    """Return (joints with missing zeroed, validity, origin, right, scale, ok) per skeleton."""
    joints = joints.float()
    valid = joint_validity(joints)
    joints = _zero_missing(joints, valid)
    origin, right, scale, ok = body_frame(joints, valid)
    if not scaled:
        scale = torch.ones_like(scale)
    return joints, valid, origin, right, scale, ok


def centred_joint_features(joints: torch.Tensor, scaled: bool = True) -> torch.Tensor:
    """
    Return the body-frame features of whole clips: ``(B, T, 25, 3) -> (B, T, 25, 7)``.

    See the module docstring for the frame and the 7 values per joint. NaN-free output.
    ``scaled=False`` keeps metres (origin and heading only, see :data:`UNSCALED`).
    """
    if joints.dim() != 4 or tuple(joints.shape[2:]) != (NUM_JOINTS, 3):
        raise ValueError(f'joint features expect joints (B, T, {NUM_JOINTS}, 3), got '
                         f'{tuple(joints.shape)}')
    joints, valid, origin, right, scale, ok = _measure(joints, scaled)  # per frame (B, T)
    seen = torch.cumsum(ok.to(torch.int64), dim=1)
    # The first ok frame of each clip; a sum with one non-zero term copies it exactly.
    first = (ok & (seen == 1)).to(joints.dtype)
    origin = (first.unsqueeze(-1) * origin).sum(dim=1, keepdim=True)
    right = (first.unsqueeze(-1) * right).sum(dim=1, keepdim=True)
    scale = (first * scale).sum(dim=1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # clips with no reference
    valid = valid & (seen > 0).unsqueeze(-1)  # nothing before the reference frame
    position = to_body_frame(joints, origin, right, scale)
    position = torch.where(valid.unsqueeze(-1), position, torch.zeros_like(position))
    previous = torch.cat([torch.zeros_like(position[:, :1]), position[:, :-1]], dim=1)
    previous_valid = torch.cat([torch.zeros_like(valid[:, :1]), valid[:, :-1]], dim=1)
    return _assemble(position, valid, previous, previous_valid)


@dataclass
class JointFeatureState:
    """What streaming joint features carry between frames (all tensors, batch first)."""

    found: torch.Tensor  # (B,) bool: the reference frame has been seen
    origin: torch.Tensor  # (B, 3)
    right: torch.Tensor  # (B, 2)
    scale: torch.Tensor  # (B,)
    position: torch.Tensor  # (B, 25, 3) last frame's body-frame positions (0 if invalid)
    valid: torch.Tensor  # (B, 25) bool, last frame's validity


def init_feature_state(batch: int, device=None) -> JointFeatureState:
    """Return the state before a clip's first frame (no reference frame yet)."""
    return JointFeatureState(
        found=torch.zeros(batch, dtype=torch.bool, device=device),
        origin=torch.zeros(batch, 3, device=device),
        right=torch.tensor([[1.0, 0.0]], device=device).repeat(batch, 1),
        scale=torch.ones(batch, device=device),
        position=torch.zeros(batch, NUM_JOINTS, 3, device=device),
        valid=torch.zeros(batch, NUM_JOINTS, dtype=torch.bool, device=device))


def centred_joint_features_step(joints: torch.Tensor, state: JointFeatureState,
                                scaled: bool = True) -> Tuple[torch.Tensor, JointFeatureState]:
    """
    Features of one frame ``(B, 25, 3) -> (B, 25, 7)`` and the new state.

    Feeding a clip's frames in order gives :func:`centred_joint_features` of the clip
    (with the same ``scaled``).
    """
    if joints.dim() != 3 or tuple(joints.shape[1:]) != (NUM_JOINTS, 3):
        raise ValueError(f'joint features expect one frame (B, {NUM_JOINTS}, 3), got '
                         f'{tuple(joints.shape)}')
    joints, valid, origin, right, scale, ok = _measure(joints, scaled)
    take = ok & ~state.found
    origin = torch.where(take.unsqueeze(-1), origin, state.origin)
    right = torch.where(take.unsqueeze(-1), right, state.right)
    scale = torch.where(take, scale, state.scale)
    found = state.found | ok
    valid = valid & found.unsqueeze(-1)
    position = to_body_frame(joints, origin, right, scale)
    position = torch.where(valid.unsqueeze(-1), position, torch.zeros_like(position))
    features = _assemble(position, valid, state.position, state.valid)
    return features, JointFeatureState(found, origin, right, scale, position, valid)


def select_channels(features: torch.Tensor, kind: str) -> torch.Tensor:
    """
    Keep the channels of :data:`CHANNELS` ``[kind]``: ``(..., 25, 7) -> (..., 25 * k)``.

    The joints are flattened with their channels (joint-major), ready for a GRU.
    """
    if kind not in CHANNELS:
        raise ValueError(f'unknown joint feature kind {kind!r}; choose one of '
                         f'{sorted(CHANNELS)}')
    return _select(features, FEATURE_NAMES, CHANNELS[kind])


def _select(features: torch.Tensor, all_names: Tuple[str, ...], names: Tuple[str, ...]
            ) -> torch.Tensor:
    if len(names) < len(all_names):
        first = all_names.index(names[0])  # the selections are contiguous
        features = features[..., first:first + len(names)]
    return features.flatten(-2)


def spinebase_joint_inputs(joints: torch.Tensor) -> torch.Tensor:
    """
    Return the old skeleton GRU inputs: ``(B, T, 25, 3) -> (B, T, 75)``.

    NaN joints count as zeros, then every joint minus the clip's first frame's SpineBase
    (camera axes and metres: depends on the camera's heading and the pitcher's size).
    """
    joints = torch.nan_to_num(joints.float())
    origin = joints[:, :1, SPINE_BASE:SPINE_BASE + 1]
    return (joints - origin).flatten(2)


def _zeros_as(x: torch.Tensor) -> torch.Tensor:
    """
    Return zeros shaped like ``x`` (finite) that stay shaped like it in a traced graph.

    ``torch.zeros_like`` of a tensor computed inside a network (the pose GRU's predicted
    joints) is folded into a constant of the traced batch size by the ONNX exporter.
    """
    return x * 0.0


def _project(joints: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return (normalised image coordinates ``(..., 25, 2)`` (0 if invalid), validity)."""
    joints = joints.float()
    valid = joint_validity(joints)
    joints = _zero_missing(joints, valid)
    depth = joints[..., 2]
    valid = valid & (depth > MIN_DEPTH)
    safe = torch.where(valid, depth, torch.ones_like(depth))
    uv = joints[..., :2] / safe.unsqueeze(-1)
    return torch.where(valid.unsqueeze(-1), uv, torch.zeros_like(uv)), valid


def _image_reference(uv: torch.Tensor, valid: torch.Tensor
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (origin ``(..., 2)``, projected torso length ``(...)``, ok) per skeleton."""
    origin = uv[..., SPINE_BASE, :]
    torso = (uv[..., SPINE_SHOULDER, :] - origin).norm(dim=-1)
    ok = valid[..., SPINE_BASE] & valid[..., SPINE_SHOULDER] & (torso > 1e-3)
    return origin, torso, ok


def _assemble_image(position: torch.Tensor, valid: torch.Tensor, previous: torch.Tensor,
                    previous_valid: torch.Tensor) -> torch.Tensor:
    return _assemble(position, valid, previous, previous_valid)[..., [0, 1, 3, 4, 6]]


def image_joint_features(joints: torch.Tensor) -> torch.Tensor:
    """
    Return what a camera sees of whole clips: ``(B, T, 25, 3) -> (B, T, 25, 5)``.

    See the module docstring (*What the colour camera sees*); NaN-free output. The
    reference frame is the clip's first frame with SpineBase and SpineShoulder in view.
    """
    if joints.dim() != 4 or tuple(joints.shape[2:]) != (NUM_JOINTS, 3):
        raise ValueError(f'joint features expect joints (B, T, {NUM_JOINTS}, 3), got '
                         f'{tuple(joints.shape)}')
    uv, valid = _project(joints)
    origin, torso, ok = _image_reference(uv, valid)
    seen = torch.cumsum(ok.to(torch.int64), dim=1)
    first = (ok & (seen == 1)).to(uv.dtype)
    origin = (first.unsqueeze(-1) * origin).sum(dim=1, keepdim=True)
    scale = (first * torso).sum(dim=1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    valid = valid & (seen > 0).unsqueeze(-1)
    flat = _zeros_as(uv[..., :1])
    position = torch.cat([(uv - origin.unsqueeze(-2)) / scale[..., None, None], flat], -1)
    position = torch.where(valid.unsqueeze(-1), position, torch.zeros_like(position))
    previous = torch.cat([_zeros_as(position[:, :1]), position[:, :-1]], dim=1)
    previous_valid = torch.cat([valid[:, :1] & ~valid[:, :1], valid[:, :-1]], dim=1)
    return _assemble_image(position, valid, previous, previous_valid)


def image_joint_features_step(joints: torch.Tensor, state: JointFeatureState
                              ) -> Tuple[torch.Tensor, JointFeatureState]:
    """
    :func:`image_joint_features` one frame at a time: ``(B, 25, 3) -> (B, 25, 5)``.

    The state is a :class:`JointFeatureState`: ``origin[:, :2]`` holds the reference
    SpineBase's image coordinates, ``position[..., :2]`` the last frame's (third
    coordinates 0, ``right`` unused).
    """
    if joints.dim() != 3 or tuple(joints.shape[1:]) != (NUM_JOINTS, 3):
        raise ValueError(f'joint features expect one frame (B, {NUM_JOINTS}, 3), got '
                         f'{tuple(joints.shape)}')
    uv, valid = _project(joints)
    origin, torso, ok = _image_reference(uv, valid)
    origin = torch.cat([origin, _zeros_as(origin[:, :1])], -1)
    take = ok & ~state.found
    origin = torch.where(take.unsqueeze(-1), origin, state.origin)
    scale = torch.where(take, torso, state.scale)
    found = state.found | ok
    valid = valid & found.unsqueeze(-1)
    flat = _zeros_as(uv[..., :1])
    position = torch.cat([(uv - origin[:, None, :2]) / scale[:, None, None], flat], -1)
    position = torch.where(valid.unsqueeze(-1), position, torch.zeros_like(position))
    features = _assemble_image(position, valid, state.position, state.valid)
    return features, JointFeatureState(found, origin, state.right, scale, position, valid)


def joint_inputs(joints: torch.Tensor, kind: str) -> torch.Tensor:
    """Return GRU inputs ``(B, T, 25 * k)`` of a kind in CHANNELS or IMAGE_CHANNELS."""
    if kind in IMAGE_CHANNELS:
        return _select(image_joint_features(joints), IMAGE_FEATURE_NAMES, IMAGE_CHANNELS[kind])
    return select_channels(centred_joint_features(joints, kind not in UNSCALED), kind)


def joint_inputs_step(joints: torch.Tensor, state: JointFeatureState, kind: str
                      ) -> Tuple[torch.Tensor, JointFeatureState]:
    """One frame of :func:`joint_inputs`: ``(B, 25, 3) -> (B, 25 * k)`` and the new state."""
    if kind in IMAGE_CHANNELS:
        frame, state = image_joint_features_step(joints, state)
        return _select(frame, IMAGE_FEATURE_NAMES, IMAGE_CHANNELS[kind]), state
    frame, state = centred_joint_features_step(joints, state, kind not in UNSCALED)
    return select_channels(frame, kind), state


def joint_input_width(kind: str) -> int:
    """Return the per-joint input count of a feature kind."""
    return len({**CHANNELS, **IMAGE_CHANNELS}[kind])
