"""Virtual camera paths for free-viewpoint video: orbit, interpolation between capture cameras, the captures.

All cameras are undistorted pinhole :class:`~ghnerf.base.cameras.Camera` records (OpenCV
convention, metres) at the output image size. The world's up direction is not assumed:
it is found from the capture cameras (:func:`world_up`), so a path stays level on any
rig whose cameras are held upright (ZJU-MoCap, RenderPeople, the synthetic ring).
"""

from collections.abc import Sequence

import numpy as np
from jaxtyping import Float
from scipy.spatial.transform import Rotation, Slerp

from ghnerf.base.cameras import Camera, look_at
from ghnerf.base.errors import ConfigError

PATHS = ("orbit", "interpolate", "cameras")
DEFAULT_TURN_VIEWS = 24  # virtual cameras of a single-frame (frozen-time) orbit
VIEWS_PER_GAP = 3  # interpolation's default: each capture camera and 2 views between it and the next


def default_views(kind: str, frames: int, cameras: int) -> int:
    """Virtual cameras on path ``kind`` when ``--views`` is not given: an orbit takes one per frame
    (:data:`DEFAULT_TURN_VIEWS` for a single frame); an interpolation at least :data:`VIEWS_PER_GAP` per gap between
    neighbouring capture cameras, so that it shows views between them and not only the captures."""
    if kind == "interpolate":
        return max(frames, VIEWS_PER_GAP * cameras)
    return frames if frames > 1 else DEFAULT_TURN_VIEWS


def world_up(cameras: Sequence[Camera]) -> Float[np.ndarray, "3"]:
    """Unit world up direction of a rig of upright cameras.

    An upright camera's image x axis (``R[0]``) is horizontal, so up is the direction most perpendicular to
    every camera's x axis (least squares, exact without roll), signed like their image-up axes (``-R[1]``). When
    the x axes do not span a plane (every camera faces the same way), the mean image-up axis is used instead.
    """
    mean_up = -np.mean([c.R[1] for c in cameras], axis=0)
    if np.linalg.norm(mean_up) < 1e-6:
        raise ConfigError("the capture cameras share no up direction (their image y axes cancel out)")
    _, sv, vt = np.linalg.svd(np.stack([c.R[0] for c in cameras]))
    if len(cameras) < 2 or sv[1] < 0.1 * sv[0]:
        return mean_up / np.linalg.norm(mean_up)
    up = vt[-1]
    return up if up @ mean_up > 0 else -up


def orbit_path(cameras: Sequence[Camera], centre: Float[np.ndarray, "3"], views: int) -> list[Camera]:
    """``views`` cameras on a circle around ``centre``, all looking at it.

    The circle lies at the capture cameras' mean height above ``centre`` (along :func:`world_up`) and their
    mean horizontal distance from it; it starts at the first capture camera's azimuth and makes one turn
    (endpoint excluded, so the video loops). Intrinsics: the captures' mean focal lengths, principal point at
    the image centre ((W - 1) / 2, (H - 1) / 2; pixel centres at integers).
    """
    if views < 1:
        raise ConfigError(f"an orbit needs at least 1 view, got {views}")
    up = world_up(cameras)
    offsets = np.stack([c.center for c in cameras]) - centre
    heights = offsets @ up
    horizontal = offsets - heights[:, None] * up
    radius = float(np.linalg.norm(horizontal, axis=1).mean())
    e1 = horizontal[0] / np.linalg.norm(horizontal[0])
    e2 = np.cross(up, e1)
    H, W = cameras[0].height, cameras[0].width
    f = np.mean([[c.K[0, 0], c.K[1, 1]] for c in cameras], axis=0)
    K = np.array([[f[0], 0, (W - 1) / 2], [0, f[1], (H - 1) / 2], [0, 0, 1]])
    out = []
    for theta in 2 * np.pi * np.arange(views) / views:
        eye = centre + heights.mean() * up + radius * (np.cos(theta) * e1 + np.sin(theta) * e2)
        R, T = look_at(eye, centre, up)
        out.append(Camera(K.copy(), R, T, np.zeros(5), H, W))
    return out


def ring_order(cameras: Sequence[Camera], centre: Float[np.ndarray, "3"]) -> list[int]:
    """Capture camera indices sorted by azimuth around ``centre`` (about :func:`world_up`), starting at camera 0."""
    up = world_up(cameras)
    offsets = np.stack([c.center for c in cameras]) - centre
    horizontal = offsets - (offsets @ up)[:, None] * up
    e1 = horizontal[0] / np.linalg.norm(horizontal[0])
    azimuth = np.arctan2(horizontal @ np.cross(up, e1), horizontal @ e1) % (2 * np.pi)
    azimuth[0] = 0.0  # camera 0 defines azimuth 0; rounding can give it -3e-17, which wraps to 2 pi (last)
    return np.argsort(azimuth, kind="stable").tolist()


def interpolate_path(knots: Sequence[Camera], views: int) -> list[Camera]:
    """``views`` cameras on a closed loop through ``knots``: rotation by slerp, centre and K linearly.

    Knot ``k`` sits at path time ``k``; view ``i`` is at time ``i * len(knots) / views``, so when ``views`` is
    a multiple of ``len(knots)`` every ``views / len(knots)``-th view is a knot camera.
    """
    n = len(knots)
    if n < 2 or views < 1:
        raise ConfigError(f"interpolation needs at least 2 capture cameras and 1 view, got {n} and {views}")
    if len({(c.height, c.width) for c in knots}) != 1:
        raise ConfigError("interpolation needs capture cameras of one image size")
    loop = list(knots) + [knots[0]]
    times = np.arange(n + 1)
    slerp = Slerp(times, Rotation.from_matrix(np.stack([c.R for c in loop])))
    centres = np.stack([c.center for c in loop])
    Ks = np.stack([c.K for c in loop]).astype(np.float64)
    t = np.arange(views) * n / views
    R = slerp(t).as_matrix()
    k0 = np.minimum(np.floor(t).astype(int), n - 1)
    a = (t - k0)[:, None]
    C = (1 - a) * centres[k0] + a * centres[k0 + 1]
    Kt = (1 - a[..., None]) * Ks[k0] + a[..., None] * Ks[k0 + 1]
    H, W = knots[0].height, knots[0].width
    return [Camera(Kt[i], R[i], -R[i] @ C[i], np.zeros(5), H, W) for i in range(views)]


def camera_path(kind: str, cameras: Sequence[Camera], centre: Float[np.ndarray, "3"], views: int) -> list[Camera]:
    """The virtual cameras of path ``kind`` (orbit | interpolate | cameras) from the (scaled) capture cameras.

    ``cameras`` gives the capture cameras in calibration order (``views`` is ignored); ``interpolate`` loops
    through them in azimuth order (:func:`ring_order`).
    """
    if kind == "orbit":
        return orbit_path(cameras, centre, views)
    if kind == "interpolate":
        return interpolate_path([cameras[i] for i in ring_order(cameras, centre)], views)
    if kind == "cameras":
        return list(cameras)
    raise ConfigError(f"unknown camera path {kind!r}; choose one of {', '.join(PATHS)}")
