"""Pinhole cameras with OpenCV distortion: projection, rays and undistortion.

Conventions (OpenCV, as ZJU-MoCap and the SHERF RenderPeople renders use):
``x_cam = R @ X_world + T`` with ``T`` in metres, camera looks down +z, image x
right, y down, pixel centres at integer coordinates. ``D`` holds
(k1, k2, p1, p2, k3).
"""

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np
from jaxtyping import Float


@dataclass(frozen=True, eq=False)
class Camera:
    """One calibrated view.

    Attributes:
        K: (3, 3) intrinsics in pixels.
        R: (3, 3) world-to-camera rotation.
        T: (3,) world-to-camera translation, metres.
        D: (5,) OpenCV distortion (k1, k2, p1, p2, k3); zeros for an ideal pinhole.
        height: image height in pixels.
        width: image width in pixels.
    """

    K: Float[np.ndarray, "3 3"]
    R: Float[np.ndarray, "3 3"]
    T: Float[np.ndarray, "3"]
    D: Float[np.ndarray, "5"] = field(default_factory=lambda: np.zeros(5))
    height: int = 0
    width: int = 0

    @property
    def has_distortion(self) -> bool:
        return bool(np.any(self.D != 0))

    @property
    def center(self) -> Float[np.ndarray, "3"]:
        """Camera centre in world coordinates (metres)."""
        return -self.R.T @ self.T

    @property
    def world_to_cam(self) -> Float[np.ndarray, "4 4"]:
        m = np.eye(4)
        m[:3, :3] = self.R
        m[:3, 3] = self.T
        return m

    def to_camera(self, points: Float[np.ndarray, "N 3"]) -> Float[np.ndarray, "N 3"]:
        """World points to camera coordinates (metres)."""
        return points @ self.R.T + self.T

    def project(self, points: Float[np.ndarray, "N 3"], distort: bool = True) -> Float[np.ndarray, "N 2"]:
        """Project world points to pixels, applying ``D`` when ``distort`` is set."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if distort and self.has_distortion:
            rvec, _ = cv2.Rodrigues(self.R.astype(np.float64))
            uv, _ = cv2.projectPoints(points, rvec, self.T.astype(np.float64), self.K.astype(np.float64),
                                      self.D.astype(np.float64))
            return uv.reshape(-1, 2)
        cam = self.to_camera(points)
        uv = cam[:, :2] / cam[:, 2:3]
        return uv @ self.K[:2, :2].T + self.K[:2, 2]

    def undistort_points(self, uv: Float[np.ndarray, "N 2"]) -> Float[np.ndarray, "N 2"]:
        """Pixels of the raw (distorted) image to pixels of the undistorted image (same K)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 1, 2)
        if not self.has_distortion:
            return uv.reshape(-1, 2).copy()
        out = cv2.undistortPoints(uv, self.K.astype(np.float64), self.D.astype(np.float64),
                                  P=self.K.astype(np.float64))
        return out.reshape(-1, 2)

    def pixel_rays(self) -> tuple[Float[np.ndarray, "3"], Float[np.ndarray, "H W 3"]]:
        """Origin and unit world directions of the ray through every pixel of the raw image.

        Distortion is honoured: the ray of raw pixel (u, v) is the one whose
        distorted projection lands on (u, v).
        """
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        uv = np.stack([u, v], axis=-1).reshape(-1, 2)
        if self.has_distortion:
            xy = cv2.undistortPoints(uv.reshape(-1, 1, 2), self.K.astype(np.float64),
                                     self.D.astype(np.float64)).reshape(-1, 2)
        else:
            xy = (uv - self.K[:2, 2]) / np.diag(self.K)[:2]
        dirs_cam = np.concatenate([xy, np.ones((xy.shape[0], 1))], axis=1)
        dirs = dirs_cam @ self.R  # R^T applied to row vectors
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        return self.center, dirs.reshape(self.height, self.width, 3)

    @cached_property
    def _undistort_maps(self) -> tuple[np.ndarray, np.ndarray]:
        return cv2.initUndistortRectifyMap(self.K.astype(np.float64), self.D.astype(np.float64), None,
                                           self.K.astype(np.float64), (self.width, self.height), cv2.CV_32FC1)

    def undistort_image(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        """Undistort an image (same K, as ``cv2.undistort``); ``nearest`` for masks, labels and depth."""
        if not self.has_distortion:
            return image
        map_x, map_y = self._undistort_maps
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.remap(image, map_x, map_y, interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def scaled(camera: Camera, scale: float) -> Camera:
    """``camera`` for images resized by ``scale`` (K rows 0-1 scaled, as the student's inputs), distortion dropped."""
    K = camera.K.astype(np.float64).copy()
    K[:2] *= scale
    return Camera(K, camera.R, camera.T, np.zeros(5), int(round(camera.height * scale)),
                  int(round(camera.width * scale)))


def look_at(eye: Float[np.ndarray, "3"], target: Float[np.ndarray, "3"],
            up: Float[np.ndarray, "3"] = np.array([0.0, 0.0, 1.0])) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (R, T) of an OpenCV camera at ``eye`` looking at ``target``."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    T = -R @ eye
    return R, T
