"""Pictures people look at: skeletons over frames, contact sheets of views."""

import cv2
import numpy as np

from ghnerf.base.body25 import BODY25_COLORS, BODY25_LIMBS


def draw_skeleton(image: np.ndarray, joints2d: np.ndarray, min_conf: float = 0.0, radius: int = 2) -> np.ndarray:
    """Draw BODY_25 limbs and joints (OpenPose colours) on a copy of an RGB uint8 image.

    Args:
        image: (H, W, 3) uint8 RGB.
        joints2d: (25, 3) pixel x, y and confidence; joints with confidence <= ``min_conf`` are skipped.
    """
    out = np.ascontiguousarray(image.copy())
    ok = joints2d[:, 2] > min_conf
    pts = np.round(joints2d[:, :2]).astype(int)
    for a, b in BODY25_LIMBS:
        if ok[a] and ok[b]:
            cv2.line(out, tuple(pts[a]), tuple(pts[b]), BODY25_COLORS[b], max(1, radius // 2), cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        cv2.circle(out, tuple(pts[j]), radius, BODY25_COLORS[j], -1, cv2.LINE_AA)
    return out


def contact_sheet(images: list[np.ndarray], columns: int = 4, labels: list[str] | None = None) -> np.ndarray:
    """Tile equally sized RGB uint8 images into a grid, with optional captions."""
    h, w = images[0].shape[:2]
    rows = (len(images) + columns - 1) // columns
    sheet = np.zeros((rows * h, columns * w, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        tile = np.ascontiguousarray(img.copy())
        if labels:
            cv2.putText(tile, labels[i], (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    return sheet


def heatmap_overlay(image: np.ndarray, heatmaps: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Max over joints of (K, h, w) heatmaps in [0, 1], upsampled to the image and blended as a JET colour map."""
    h, w = image.shape[:2]
    peak = cv2.resize(heatmaps.max(axis=0).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.clip(peak * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    weight = (alpha * np.clip(peak, 0, 1))[..., None]
    return np.clip(image * (1 - weight) + colour * weight, 0, 255).astype(np.uint8)


def embedding_colours(image: np.ndarray, embedding: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """First three dimensions of a (D, h, w) unit embedding as RGB over the foreground, upsampled to the image."""
    h, w = image.shape[:2]
    rgb = np.clip((embedding[:3].transpose(1, 2, 0) + 1) * 127.5, 0, 255).astype(np.uint8)
    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_NEAREST)
    m = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    out = (image * 0.35).astype(np.uint8)
    out[m] = rgb[m]
    return out


def reliability_diagram(within: list[float | None], joints: list[int], size: int = 240) -> np.ndarray:
    """RGB uint8 (size, size) calibration plot: per confidence bin over [0, 1] a bar as high as the fraction of
    its joints within the PCK radius (none for an empty bin), the diagonal a calibrated model follows, and each
    bin's joint count above its bar (``within``, ``joints``: :meth:`ghnerf.eval.metrics.Calibration.as_dict`)."""
    img = np.full((size, size, 3), 255, np.uint8)
    bins, pad = len(within), size // 10
    span = size - 2 * pad
    cv2.line(img, (pad, size - pad), (size - pad, pad), (160, 160, 160), 1, cv2.LINE_AA)
    for b, (rate, n) in enumerate(zip(within, joints)):
        x0, x1 = pad + b * span // bins, pad + (b + 1) * span // bins - 1
        if rate is not None:
            top = size - pad - int(round(rate * span))
            cv2.rectangle(img, (x0 + 1, top), (x1 - 1, size - pad), (40, 110, 200), -1)
            cv2.putText(img, str(n), (x0 + 1, max(top - 3, 9)), cv2.FONT_HERSHEY_PLAIN, 0.6, (0, 0, 0), 1)
    cv2.rectangle(img, (pad, pad), (size - pad, size - pad), (0, 0, 0), 1)
    cv2.putText(img, "confidence", (size // 2 - 30, size - 5), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
    cv2.putText(img, "within PCK", (2, pad - 6), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
    return img
