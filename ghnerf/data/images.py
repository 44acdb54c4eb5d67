"""Loading one camera view's pixels: image, mask, depth, surface coordinates.

Everything returned is *undistorted* (same K, as ENeRF/neuralbody call
``cv2.undistort``) so that it lines up with rays built from K, R, T. Masks are the
union of the available mask files (non-zero = person), optionally dilated like
ENeRF does for training (5 x 5 kernel).
"""

from dataclasses import dataclass

import cv2
import numpy as np

from ghnerf.base.cameras import Camera
from ghnerf.base.errors import DataReadError
from ghnerf.base.fileio import check_image_file, read_image
from ghnerf.base.safe_numpy import load_npz
from ghnerf.data.records import CameraView

ENERF_DILATE_KERNEL = 5
DEPTH_UNIT_M = 1e-3  # synthetic depth PNGs store millimetres


@dataclass(frozen=True, eq=False)
class ViewImages:
    """Pixels of one view after undistortion.

    Attributes:
        image: (H, W, 3) float32 RGB in [0, 1].
        mask: (H, W) bool foreground.
        camera: the view's camera with ``D`` zeroed (pixels are undistorted).
    """

    image: np.ndarray
    mask: np.ndarray
    camera: Camera

    @property
    def photo(self) -> np.ndarray:
        """(H, W, 3) uint8: the image as a teacher is handed it (the bytes its keypoint cache is keyed by)."""
        return np.round(self.image * 255).astype(np.uint8)


def pinhole(camera: Camera) -> Camera:
    """The same camera after undistortion (D = 0)."""
    return Camera(camera.K, camera.R, camera.T, np.zeros(5), camera.height, camera.width)


def size_problem(view: CameraView, size: tuple[int, int], what: str) -> str | None:
    """Why a file of ``size`` (H, W) does not fit ``view`` (None when it does)."""
    expected = (view.camera.height, view.camera.width)
    if tuple(size) == expected:
        return None
    if what == "image":
        return (f"image is {size[1]}x{size[0]} (WxH) but the other images of camera {view.name} are "
                f"{expected[1]}x{expected[0]} (the size most of its frames have); replace it with a "
                f"{expected[1]}x{expected[0]} image")
    return (f"{what} is {size[1]}x{size[0]} (WxH) but its image {view.image_path.name} is "
            f"{expected[1]}x{expected[0]}; regenerate the {what}")


def _check_size(view: CameraView, array: np.ndarray, path, what: str) -> None:
    problem = size_problem(view, array.shape[:2], what)
    if problem:
        raise DataReadError(path, problem)


def view_problems(view: CameraView) -> list[tuple[str, str]]:
    """What would make :func:`load_view` fail for ``view``, from file headers only (no decode).

    Returns:
        ``(path, problem)`` per bad file: image and mask files missing, unreadable, truncated or of the wrong
        size, or no mask at all.
    """
    problems = []
    size, problem = check_image_file(view.image_path, "image")
    if problem is None:
        problem = size_problem(view, size, "image")
    if problem:
        problems.append((str(view.image_path), problem))
    if not view.mask_paths:
        problems.append((str(view.image_path), "no mask file for this image (looked in mask/ and mask_cihp/)"))
    for path in view.mask_paths:
        size, problem = check_image_file(path, "mask")
        if problem is None:
            problem = size_problem(view, size, "mask")
        if problem:
            problems.append((str(path), problem))
    return problems


def load_mask(view: CameraView, undistort: bool = True, dilate: int = 0) -> np.ndarray:
    """Union of the view's mask files as bool (H, W); ``dilate`` = square kernel size (0 = none)."""
    if not view.mask_paths:
        raise DataReadError(view.image_path, "no mask file for this image (looked in mask/ and mask_cihp/)")
    mask = np.zeros((view.camera.height, view.camera.width), dtype=bool)
    for path in view.mask_paths:
        m = read_image(path, "mask", grayscale=True)
        _check_size(view, m, path, "mask")
        mask |= m != 0
    m8 = mask.astype(np.uint8)
    if undistort:
        m8 = view.camera.undistort_image(m8, nearest=True)
    if dilate:
        m8 = cv2.dilate(m8, np.ones((dilate, dilate), np.uint8))
    return m8.astype(bool)


def load_view(view: CameraView, undistort: bool = True, dilate: int = 0) -> ViewImages:
    """Image and mask of one view.

    Args:
        view: the camera view.
        undistort: remove lens distortion (always wanted for rendering and teachers).
        dilate: mask dilation kernel size (ENeRF uses 5 for training).
    """
    img = read_image(view.image_path, "image")
    _check_size(view, img, view.image_path, "image")
    mask = load_mask(view, undistort=undistort, dilate=dilate)
    if undistort:
        img = view.camera.undistort_image(img)
    return ViewImages(img.astype(np.float32) / 255.0, mask, pinhole(view.camera) if undistort else view.camera)


def load_depth(view: CameraView, undistort: bool = True) -> np.ndarray:
    """Synthetic depth (H, W) float32 in metres along camera z; NaN where there is no surface."""
    if view.depth_path is None:
        raise DataReadError(view.image_path, "this dataset has no depth maps (only synthetic data has them)")
    raw = read_image(view.depth_path, "depth map", grayscale=True, keep_depth=True)
    _check_size(view, raw, view.depth_path, "depth map")
    if undistort:
        raw = view.camera.undistort_image(raw, nearest=True)
    depth = raw.astype(np.float32) * DEPTH_UNIT_M
    depth[raw == 0] = np.nan
    return depth


def load_surface(view: CameraView, undistort: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic canonical surface coordinates (H, W, 3) float32 (NaN off-body) and parsing labels (H, W) uint8."""
    if view.surface_path is None:
        raise DataReadError(view.image_path, "this dataset has no surface coordinates (only synthetic data has them)")
    z = load_npz(view.surface_path, "surface file")
    try:
        canonical, label = z["canonical"].astype(np.float32), z["label"]
    except Exception as exc:  # noqa: BLE001
        raise DataReadError(view.surface_path, f"surface file is unreadable ({exc})") from exc
    _check_size(view, label, view.surface_path, "surface file")
    if undistort:
        canonical = view.camera.undistort_image(canonical, nearest=True)
        label = view.camera.undistort_image(label, nearest=True)
    canonical[label == 0] = np.nan
    return canonical, label
