"""
Ball flight and the target grid, in the pitcher's frame (metres, seconds).

Pitcher frame: origin on the floor at the middle of the pitcher's feet at rest; axes
``r`` (pitcher's right), ``u`` (up), ``f`` (forward, towards the targets). The target
plane is ``f = distance``; its 3x3 grid of square blocks is numbered as
:mod:`pitch_predictor.kinect` says (1 = top-left as the pitcher sees it, row by row).

Flight: gravity plus quadratic air drag, ``a = g - k |v| v`` with
``k = rho * Cd * A / (2 m)`` (a tennis-size ball by default), integrated with a
fixed-step midpoint method, vectorised over many throws at once.
"""

from dataclasses import dataclass
import math
from typing import Tuple

import numpy as np

from pitch_predictor.kinect import GRID_COLS, GRID_ROWS, row_col_to_block

GRAVITY = 9.81


@dataclass(frozen=True)
class TargetGrid:
    """The 3x3 grid on the target plane, in the pitcher frame."""

    distance: float = 4.0  # m from the pitcher's rest position to the target plane
    centre_height: float = 1.2  # m above the floor (centre of block 5)
    centre_lateral: float = 0.0  # m to the pitcher's right
    block_size: float = 0.3  # m, side of one square block

    def block_centre(self, block: int) -> np.ndarray:
        """Return the (r, u, f) centre of ``block`` (1..9) on the target plane."""
        row, col = (int(block) - 1) // GRID_COLS, (int(block) - 1) % GRID_COLS
        return np.array([self.centre_lateral + (col - 1) * self.block_size,
                         self.centre_height + (1 - row) * self.block_size,
                         self.distance])

    def block_at(self, lateral: np.ndarray, height: np.ndarray) -> np.ndarray:
        """Return the block (1..9) hit at each (lateral, height), or 0 off the grid."""
        col = np.floor((np.asarray(lateral) - self.centre_lateral) / self.block_size + 1.5)
        row = np.floor((self.centre_height - np.asarray(height)) / self.block_size + 1.5)
        inside = (col >= 0) & (col < GRID_COLS) & (row >= 0) & (row < GRID_ROWS)
        col = np.where(inside, col, 0).astype(int)
        row = np.where(inside, row, 0).astype(int)
        blocks = np.array([row_col_to_block(r, c) for r, c in zip(row.ravel(), col.ravel())],
                          dtype=int).reshape(row.shape)
        return np.where(inside, blocks, 0)


@dataclass(frozen=True)
class BallModel:
    """Ball and air: drag constant ``k = rho Cd A / (2 m)`` in 1/m."""

    radius: float = 0.0335
    mass: float = 0.058
    drag_coefficient: float = 0.55
    air_density: float = 1.2
    drag: bool = True

    @property
    def k(self) -> float:
        """Return the quadratic drag constant (0 without drag)."""
        if not self.drag:
            return 0.0
        area = math.pi * self.radius ** 2
        return self.air_density * self.drag_coefficient * area / (2.0 * self.mass)


def fly_to_plane(pos: np.ndarray, vel: np.ndarray, plane_f: float, ball: BallModel,
                 dt: float = 2e-3, max_time: float = 3.0) -> Tuple[np.ndarray, np.ndarray]:
    """
    Fly balls from ``pos`` with ``vel`` (N, 3) until they cross ``f = plane_f``.

    Returns ``(points (N, 3), times (N,))``: where and when each ball crosses the plane
    (linear interpolation inside the last step); NaN for balls that never get there.
    """
    pos = np.array(pos, dtype=float).reshape(-1, 3)
    vel = np.array(vel, dtype=float).reshape(-1, 3)
    k = ball.k
    g = np.array([0.0, -GRAVITY, 0.0])
    hit = np.full_like(pos, np.nan)
    when = np.full(len(pos), np.nan)
    active = pos[:, 2] < plane_f
    t = 0.0
    while active.any() and t < max_time:
        p, v = pos[active], vel[active]
        a1 = g - k * np.linalg.norm(v, axis=1, keepdims=True) * v
        v_mid = v + 0.5 * dt * a1
        a2 = g - k * np.linalg.norm(v_mid, axis=1, keepdims=True) * v_mid
        p_new = p + dt * v_mid
        v_new = v + dt * a2
        crossed = p_new[:, 2] >= plane_f
        if crossed.any():
            frac = (plane_f - p[crossed, 2]) / (p_new[crossed, 2] - p[crossed, 2])
            idx = np.flatnonzero(active)[crossed]
            hit[idx] = p[crossed] + frac[:, None] * (p_new[crossed] - p[crossed])
            when[idx] = t + frac * dt
        pos[active], vel[active] = p_new, v_new
        active[np.flatnonzero(active)[crossed]] = False
        t += dt
    return hit, when


def launch_velocity(speed: np.ndarray, elevation: np.ndarray,
                    azimuth: np.ndarray) -> np.ndarray:
    """Return velocity vectors (N, 3): elevation up from level, azimuth to the right (rad)."""
    speed, elevation, azimuth = np.broadcast_arrays(speed, elevation, azimuth)
    return np.stack([speed * np.cos(elevation) * np.sin(azimuth),
                     speed * np.sin(elevation),
                     speed * np.cos(elevation) * np.cos(azimuth)], axis=-1)


def solve_aim(release: np.ndarray, speed: np.ndarray, target: np.ndarray,
              ball: BallModel, iterations: int = 4) -> Tuple[np.ndarray, np.ndarray]:
    """
    Return the (elevation, azimuth) in rad that fly each ball onto its target point.

    ``release``, ``target``: (N, 3) in the pitcher frame (targets on one plane);
    ``speed``: (N,). Newton's method on the flight with drag, started from the
    drag-free low-angle solution; the pitcher's learned aim.
    """
    release = np.asarray(release, dtype=float).reshape(-1, 3)
    target = np.asarray(target, dtype=float).reshape(-1, 3)
    speed = np.broadcast_to(np.asarray(speed, dtype=float), (len(release),))
    plane = float(target[0, 2])
    delta = target - release
    azimuth = np.arctan2(delta[:, 0], delta[:, 2])
    horizontal = np.hypot(delta[:, 0], delta[:, 2])
    disc = np.maximum(speed ** 4 - GRAVITY * (GRAVITY * horizontal ** 2
                                              + 2 * delta[:, 1] * speed ** 2), 0.0)
    elevation = np.arctan((speed ** 2 - np.sqrt(disc)) / (GRAVITY * horizontal))
    step = 1e-4

    def miss(elev: np.ndarray, azim: np.ndarray) -> np.ndarray:
        points, _ = fly_to_plane(release, launch_velocity(speed, elev, azim), plane, ball)
        return points[:, :2] - target[:, :2]

    for _ in range(iterations):
        base = miss(elevation, azimuth)
        d_elev = (miss(elevation + step, azimuth) - base) / step
        d_azim = (miss(elevation, azimuth + step) - base) / step
        jac = np.stack([d_elev, d_azim], axis=-1)  # (N, 2 outputs, 2 inputs)
        update = np.linalg.solve(jac, base[..., None])[..., 0]
        elevation = elevation - update[:, 0]
        azimuth = azimuth - update[:, 1]
    return elevation, azimuth
