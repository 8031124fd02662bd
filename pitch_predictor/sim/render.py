"""
OpenCV rendering of the synthetic Kinect colour stream.

Pinhole camera with Kinect V2 colour intrinsics (fx = fy = 1081.37 px at 1920x1080)
scaled to the output size; camera space as the Kinect SDK's (x to the sensor's left,
y up, z away from the sensor), so a point projects to ``u = cx - fx x / z``,
``v = cy - fy y / z``. The room (walls, floor, furniture, clutter) and the lighting are
fixed per session; the pitcher is drawn as depth-sorted, shaded capsules (limbs), a
polygon (torso) and a head, in the participant's colours, with anti-aliased sub-pixel
drawing. Per frame: lamp flicker and sensor noise.
"""

from dataclasses import dataclass
import functools
from typing import Dict, List, Tuple

import cv2
import numpy as np

from pitch_predictor.kinect import JOINT_INDEX

J = JOINT_INDEX
KINECT_COLOR_WIDTH = 1920
KINECT_COLOR_HEIGHT = 1080
KINECT_COLOR_FOCAL = 1081.37
SHIFT = 4  # cv2 fixed-point bits: sub-pixel drawing
SCALE = float(1 << SHIFT)


@dataclass(frozen=True)
class Camera:
    """A level pinhole camera: pose in the pitcher frame and Kinect-like intrinsics."""

    width: int
    height: int
    position: Tuple[float, float, float]  # pitcher frame (r, u, f)
    look_at: Tuple[float, float, float]

    @property
    def focal(self) -> float:
        """Return the focal length in pixels at this output size."""
        return KINECT_COLOR_FOCAL * self.height / KINECT_COLOR_HEIGHT

    def axes(self) -> np.ndarray:
        """Return the rows x (sensor's left), y (up), z (optical axis) in the pitcher frame."""
        forward = np.asarray(self.look_at, float) - np.asarray(self.position, float)
        forward[1] = 0.0  # level camera, as the Kinect usually sits
        z = forward / np.linalg.norm(forward)
        y = np.array([0.0, 1.0, 0.0])
        # The pitcher frame (right, up, forward) is left-handed, so numpy's cross product
        # flips sign there: the sensor's left is z x y in these coordinates.
        x = np.cross(z, y)
        return np.stack([x, y, z])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Map pitcher-frame points (..., 3) to Kinect camera space (..., 3)."""
        return (np.asarray(points) - np.asarray(self.position)) @ self.axes().T

    def project(self, cam_points: np.ndarray) -> np.ndarray:
        """Project camera-space points (..., 3) to pixel coordinates (..., 2)."""
        f = self.focal
        z = np.maximum(cam_points[..., 2], 1e-3)
        u = (self.width - 1) / 2.0 - f * cam_points[..., 0] / z
        v = (self.height - 1) / 2.0 - f * cam_points[..., 1] / z
        return np.stack([u, v], -1)


@dataclass
class Session:
    """Per-session scene: camera, room image (lit), lighting and flicker."""

    camera: Camera
    background: np.ndarray  # uint8 RGB, lighting applied
    light_gain: np.ndarray  # (3,) per-channel gain applied to the pitcher's colours
    light_dir: Tuple[float, float]  # image-plane direction towards the light
    flicker_amp: float
    flicker_freq: float  # cycles per frame
    flicker_phase: float
    noise_sigma: float


def _shade(colour: np.ndarray, factor: float) -> Tuple[int, int, int]:
    return tuple(int(c) for c in np.clip(np.asarray(colour, float) * factor, 0, 255))


def _box(img: np.ndarray, x0: float, y0: float, x1: float, y1: float,
         colour: np.ndarray) -> None:
    """Draw a shaded box (front face, darker edge, lit top) in fractional coordinates."""
    h, w = img.shape[:2]
    p0 = (int(x0 * w), int(y0 * h))
    p1 = (int(x1 * w), int(y1 * h))
    cv2.rectangle(img, p0, p1, _shade(colour, 0.75), -1)
    inset = max(1, int(0.004 * w))
    cv2.rectangle(img, (p0[0] + inset, p0[1] + inset), (p1[0] - inset, p1[1] - inset),
                  _shade(colour, 1.0), -1)
    cv2.line(img, (p0[0], p0[1]), (p1[0], p0[1]), _shade(colour, 1.25), inset)


def make_background(width: int, height: int, camera: Camera,
                    rng: np.random.Generator) -> np.ndarray:
    """Draw a cluttered room seen from ``camera`` (RGB uint8, before lighting)."""
    img = np.zeros((height, width, 3), np.uint8)
    f = camera.focal
    cam_height = camera.position[1]
    wall_dist = float(np.linalg.norm(np.subtract(camera.look_at, camera.position))) + 2.5
    horizon = (height - 1) / 2.0
    floor_y = int(horizon + f * cam_height / wall_dist)
    wall = rng.uniform(120, 215, 3)
    floor = rng.uniform(60, 150, 3)
    rows = np.arange(height, dtype=float)[:, None, None] / height
    img[:] = np.clip(wall * (1.05 - 0.25 * rows), 0, 255).astype(np.uint8)
    grad = np.clip(floor * (0.75 + 0.45 * (rows[floor_y:] - floor_y / height)), 0, 255)
    img[floor_y:] = grad.astype(np.uint8)
    # Floor boards converging to the vanishing point.
    vp = (width / 2.0, horizon)
    for k in range(-12, 13):
        x_far = vp[0] + k * width * 0.06
        x_near = vp[0] + (x_far - vp[0]) * (height - vp[1]) / (floor_y - vp[1] + 1e-6)
        cv2.line(img, (int(x_far), floor_y), (int(x_near), height), _shade(floor, 0.8),
                 max(1, width // 400), cv2.LINE_AA)
    cv2.rectangle(img, (0, floor_y - max(2, height // 80)), (width, floor_y),
                  _shade(wall, 0.6), -1)
    fy = floor_y / height
    # Door, window, posters, shelves with boxes, a table, a cabinet: random per session.
    _box(img, rng.uniform(0.02, 0.15), fy - 0.42, rng.uniform(0.2, 0.26), fy,
         rng.uniform(70, 160, 3))
    wx = rng.uniform(0.55, 0.8)
    _box(img, wx, 0.05, wx + 0.17, 0.3, np.array([225.0, 235.0, 245.0]))
    cv2.line(img, (int((wx + 0.085) * width), int(0.05 * height)),
             (int((wx + 0.085) * width), int(0.3 * height)), (90, 90, 90), max(1, width // 300))
    for _ in range(int(rng.integers(2, 5))):
        px, py = rng.uniform(0.05, 0.9), rng.uniform(0.05, fy - 0.35)
        _box(img, px, py, px + rng.uniform(0.04, 0.1), py + rng.uniform(0.05, 0.14),
             rng.uniform(30, 250, 3))
    sx = rng.uniform(0.3, 0.7)
    for level in range(3):
        y = fy - 0.12 - 0.13 * level
        _box(img, sx, y, sx + 0.22, y + 0.015, np.array([110.0, 80.0, 55.0]))
        x = sx + 0.01
        while x < sx + 0.2:
            bw = rng.uniform(0.01, 0.04)
            bh = rng.uniform(0.03, 0.1)
            _box(img, x, y - bh, x + bw, y, rng.uniform(30, 240, 3))
            x += bw + rng.uniform(0.0, 0.02)
    for _ in range(int(rng.integers(3, 7))):
        bx = rng.uniform(0.0, 0.95)
        by = rng.uniform(fy + 0.01, 0.98)
        size = rng.uniform(0.03, 0.08) * (0.6 + by)
        _box(img, bx, by - size, bx + size * rng.uniform(0.8, 1.6), by, rng.uniform(30, 230, 3))
    tx = rng.choice([rng.uniform(0.0, 0.12), rng.uniform(0.8, 0.9)])
    _box(img, tx, fy - 0.08, tx + 0.14, fy - 0.06, np.array([140.0, 100.0, 70.0]))
    for leg in (tx + 0.005, tx + 0.125):
        _box(img, leg, fy - 0.06, leg + 0.01, fy + 0.03, np.array([90.0, 70.0, 50.0]))
    return cv2.GaussianBlur(img, (0, 0), 0.6)


def apply_lighting(img: np.ndarray, gain: np.ndarray, light_x: float) -> np.ndarray:
    """Apply per-channel gain, a horizontal light fall-off and vignetting."""
    h, w = img.shape[:2]
    xs = np.linspace(-1.0, 1.0, w)[None, :]
    ys = np.linspace(-1.0, 1.0, h)[:, None]
    falloff = (1.0 + 0.12 * light_x * xs) * (1.0 - 0.18 * (xs ** 2 + ys ** 2) / 2.0)
    out = img.astype(np.float32) * falloff[..., None] * gain[None, None, :]
    return np.clip(out, 0, 255).astype(np.uint8)


class NoiseBank:
    """Pre-drawn sensor-noise fields; a frame takes a random window of one (fast)."""

    def __init__(self, width: int, height: int, sigma: float, seed: int, count: int = 4):
        rng = np.random.default_rng(seed)
        self.pad = 16
        fields = rng.normal(0.0, sigma, (count, height + self.pad, width + self.pad, 3))
        fields = np.round(fields)
        self.pos = np.clip(fields, 0, 255).astype(np.uint8)
        self.neg = np.clip(-fields, 0, 255).astype(np.uint8)
        self.height, self.width = height, width

    def apply(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Add a noise window chosen by ``rng`` to ``img`` (saturating)."""
        k = int(rng.integers(len(self.pos)))
        dy, dx = (int(v) for v in rng.integers(0, self.pad, 2))
        win = (slice(dy, dy + self.height), slice(dx, dx + self.width))
        img = cv2.add(img, np.ascontiguousarray(self.pos[k][win]))
        return cv2.subtract(img, np.ascontiguousarray(self.neg[k][win]))


@functools.lru_cache(maxsize=4)
def noise_bank(width: int, height: int, sigma: float) -> NoiseBank:
    """Return the (cached) noise bank of one frame size; its seed depends on the size only."""
    return NoiseBank(width, height, sigma, seed=width * 7919 + height)


# Primitives of the body: (kind, joints, colour key, width in m as a fraction of height).
_LIMBS = (
    ('capsule', ('HipRight', 'KneeRight'), 'pants', 0.085),
    ('capsule', ('KneeRight', 'AnkleRight'), 'pants', 0.062),
    ('capsule', ('AnkleRight', 'FootRight'), 'shoes', 0.05),
    ('capsule', ('HipLeft', 'KneeLeft'), 'pants', 0.085),
    ('capsule', ('KneeLeft', 'AnkleLeft'), 'pants', 0.062),
    ('capsule', ('AnkleLeft', 'FootLeft'), 'shoes', 0.05),
    ('capsule', ('ShoulderRight', 'ElbowRight'), 'sleeve', 0.052),
    ('capsule', ('ElbowRight', 'WristRight'), 'forearm', 0.042),
    ('capsule', ('WristRight', 'HandTipRight'), 'skin', 0.038),
    ('capsule', ('ShoulderLeft', 'ElbowLeft'), 'sleeve', 0.052),
    ('capsule', ('ElbowLeft', 'WristLeft'), 'forearm', 0.042),
    ('glove', ('HandLeft',), 'glove', 0.075),
    ('capsule', ('Neck', 'Head'), 'skin', 0.05),
    ('head', ('Head',), 'skin', 0.115),
    ('torso', ('ShoulderLeft', 'ShoulderRight', 'HipRight', 'HipLeft'), 'shirt', 0.0),
)


class PitcherRenderer:
    """Draw the pitcher, the ball and the session's room for one participant."""

    def __init__(self, session: Session, colours: Dict[str, Tuple[int, int, int]],
                 body_height: float, long_sleeves: bool, cap: bool):
        self.session = session
        lit = {k: np.asarray(v, float) * session.light_gain for k, v in colours.items()}
        lit['sleeve'] = lit['shirt']
        # Long sleeves are an undershirt under the jersey, in a contrasting colour.
        lit['forearm'] = lit['undershirt'] if long_sleeves else lit['skin']
        self.colours = lit
        self.body_height = body_height
        self.cap = cap
        cam = session.camera
        self.noise = noise_bank(cam.width, cam.height, session.noise_sigma)
        lx, ly = session.light_dir
        self.light = np.array([lx, ly]) / np.hypot(lx, ly)

    def _pt(self, uv: np.ndarray) -> Tuple[int, int]:
        return int(round(uv[0] * SCALE)), int(round(uv[1] * SCALE))

    def _capsule(self, img: np.ndarray, a: np.ndarray, b: np.ndarray, width_px: float,
                 colour: np.ndarray) -> None:
        # Three strokes: shadow side, body colour shifted to the light, highlight.
        offset = self.light * width_px
        w = max(1, int(round(width_px)))
        cv2.line(img, self._pt(a), self._pt(b), _shade(colour, 0.62), w, cv2.LINE_AA, SHIFT)
        w2 = max(1, int(round(width_px * 0.65)))
        o = offset * 0.15
        cv2.line(img, self._pt(a + o), self._pt(b + o), _shade(colour, 1.0), w2, cv2.LINE_AA,
                 SHIFT)
        w3 = max(1, int(round(width_px * 0.22)))
        o = offset * 0.28
        cv2.line(img, self._pt(a + o), self._pt(b + o), _shade(colour, 1.3), w3, cv2.LINE_AA,
                 SHIFT)

    def _disc(self, img: np.ndarray, c: np.ndarray, radius_px: float,
              colour: np.ndarray) -> None:
        r = max(1, int(round(radius_px * SCALE)))
        cv2.circle(img, self._pt(c), r, _shade(colour, 0.65), -1, cv2.LINE_AA, SHIFT)
        o = self.light * radius_px * 0.25
        cv2.circle(img, self._pt(c + o), max(1, int(r * 0.72)), _shade(colour, 1.0), -1,
                   cv2.LINE_AA, SHIFT)
        o = self.light * radius_px * 0.45
        cv2.circle(img, self._pt(c + o), max(1, int(r * 0.3)), _shade(colour, 1.25), -1,
                   cv2.LINE_AA, SHIFT)

    def render(self, joints_cam: np.ndarray, ball_cam: np.ndarray, frame_index: int,
               rng: np.random.Generator) -> np.ndarray:
        """Render one RGB frame from camera-space joints (25, 3) and ball (3,) or NaN."""
        cam = self.session.camera
        img = self.session.background.copy()
        uv = cam.project(joints_cam)
        z = joints_cam[:, 2]
        f = cam.focal
        height = self.body_height
        # Contact shadow on the floor, under the feet.
        feet = [J['AnkleLeft'], J['AnkleRight'], J['FootLeft'], J['FootRight']]
        floor_pts = joints_cam[feet].copy()
        floor_pts[:, 1] = -cam.position[1]
        fuv = cam.project(floor_pts)
        centre = fuv.mean(0)
        axes = (max(2.0, (np.ptp(fuv[:, 0]) / 2 + 0.12 * f / z[feet].mean())),
                max(1.0, 0.035 * f / z[feet].mean()))
        x0, y0 = int(centre[0] - axes[0] - 2), int(centre[1] - axes[1] - 2)
        x1, y1 = int(centre[0] + axes[0] + 3), int(centre[1] + axes[1] + 3)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, img.shape[1]), min(y1, img.shape[0])
        if x1 > x0 and y1 > y0:
            roi = img[y0:y1, x0:x1]
            mask = np.zeros(roi.shape[:2], np.uint8)
            cv2.ellipse(mask, self._pt(centre - (x0, y0)),
                        (int(axes[0] * SCALE), int(axes[1] * SCALE)), 0, 0, 360, 255, -1,
                        cv2.LINE_AA, SHIFT)
            shade = (255 - (mask.astype(np.uint16) * 90 // 255)).astype(np.uint8)
            img[y0:y1, x0:x1] = (roi.astype(np.uint16) * shade[..., None] // 255).astype(
                np.uint8)
        items: List[Tuple[float, int, tuple]] = []
        for order, (kind, names, key, width) in enumerate(_LIMBS):
            idx = [J[n] for n in names]
            items.append((float(z[idx].mean()), order, (kind, idx, key, width)))
        if np.all(np.isfinite(ball_cam)):
            items.append((float(ball_cam[2]) - 0.05, len(items), ('ball', None, None, 0.0)))
        items.sort(key=lambda item: -item[0])
        for _, _, (kind, idx, key, width) in items:
            if kind == 'ball':
                buv = cam.project(ball_cam)
                self._disc(img, buv, max(1.2, 0.0335 * f / ball_cam[2]),
                           np.array([235.0, 235.0, 215.0]) * self.session.light_gain)
                continue
            colour = self.colours[key]
            zs = float(z[idx].mean())
            if kind == 'capsule':
                self._capsule(img, uv[idx[0]], uv[idx[1]], width * height * f / zs, colour)
            elif kind == 'glove':
                self._disc(img, uv[idx[0]], 0.5 * width * height * f / zs, colour)
            elif kind == 'head':
                r = 0.5 * width * height * f / zs
                self._disc(img, uv[idx[0]], r, colour)
                hair = self.colours['hair']
                top = uv[idx[0]] - np.array([0.0, 0.35 * r])
                if self.cap:
                    cv2.ellipse(img, self._pt(top), (int(r * 1.05 * SCALE), int(r * 0.7 * SCALE)),
                                0, 180, 360, _shade(hair, 1.0), -1, cv2.LINE_AA, SHIFT)
                    brim = (self._pt(top + [-r, 0.1 * r]), self._pt(top + [r * 1.5, 0.2 * r]))
                    cv2.line(img, *brim, _shade(hair, 0.8), max(1, int(0.2 * r)), cv2.LINE_AA,
                             SHIFT)
                else:
                    cv2.ellipse(img, self._pt(top), (int(r * 0.95 * SCALE), int(r * 0.6 * SCALE)),
                                0, 180, 360, _shade(hair, 1.0), -1, cv2.LINE_AA, SHIFT)
            else:
                self._torso(img, uv[idx], width_px=0.03 * height * f / zs, colour=colour)
        gain = 1.0 + self.session.flicker_amp * np.sin(
            2 * np.pi * self.session.flicker_freq * frame_index + self.session.flicker_phase)
        gain += 0.002 * rng.standard_normal()
        img = cv2.convertScaleAbs(img, alpha=float(gain))
        return self.noise.apply(img, rng)

    def _torso(self, img: np.ndarray, quad: np.ndarray, width_px: float,
               colour: np.ndarray) -> None:
        centre = quad.mean(0)
        grown = centre + (quad - centre) * 1.12
        # Shoulders and hips are rounded, thick edges: outline strokes around the polygon.
        pts = np.round(grown * SCALE).astype(np.int32)
        cv2.fillPoly(img, [pts], _shade(colour, 0.62), cv2.LINE_AA, SHIFT)
        cv2.polylines(img, [pts], True, _shade(colour, 0.62), max(1, int(width_px)),
                      cv2.LINE_AA, SHIFT)
        inner = centre + (quad - centre) * 0.85 + self.light * width_px * 0.6
        cv2.fillPoly(img, [np.round(inner * SCALE).astype(np.int32)], _shade(colour, 1.0),
                     cv2.LINE_AA, SHIFT)
        core = centre + (quad - centre) * 0.4 + self.light * width_px * 1.2
        cv2.fillPoly(img, [np.round(core * SCALE).astype(np.int32)], _shade(colour, 1.18),
                     cv2.LINE_AA, SHIFT)
