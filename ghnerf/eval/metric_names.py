"""The evaluation's metrics, declared once: their keys in ``metrics.json``, table headers, number formats, which
direction is better, and their definitions (written into every report). Light to import (no torch)."""

from dataclasses import dataclass
from enum import StrEnum

PCK_ALPHA = 0.2  # PCK threshold: a fraction of the torso diameter (LShoulder-RHip)


class Metric(StrEnum):
    """A metric's key in ``metrics.json`` (a ``str``: ``Metric.PCK == "pck"``)."""

    PSNR = "psnr"
    SSIM = "ssim"
    LPIPS = "lpips"
    HEATMAP_MSE = "heatmap_mse"
    PCK = "pck"
    COCO_AP = "coco_ap"
    MPJPE_VOLUMETRIC = "mpjpe_volumetric_m"
    MPJPE_TRIANGULATED = "mpjpe_triangulated_m"
    CSE_MSE = "cse_mse"
    RENDER_SECONDS = "render_seconds"
    FPS = "fps"


@dataclass(frozen=True)
class MetricInfo:
    header: str
    fmt: str
    lower_is_better: bool
    definition: str


METRICS: dict[Metric, MetricInfo] = {
    Metric.PSNR: MetricInfo("PSNR", ".2f", False, "PSNR (dB) over the pixels inside the projected body box, images in "
                                                   "[0, 1] (ENeRF mask_at_box)"),
    Metric.SSIM: MetricInfo("SSIM", ".3f", False, "scikit-image SSIM on the bounding rectangle of the body box"),
    Metric.LPIPS: MetricInfo("LPIPS", ".4f", True, "LPIPS-VGG on the body-box rectangle; 'unavailable' when "
                                                   "vgg16-397923af.pth is not in the torch hub cache"),
    Metric.HEATMAP_MSE: MetricInfo(
        "MSE", ".4f", True, "mean squared error of the rendered heatmaps against Gaussian targets at the dataset's 2D "
                            "joints (sigma 7 px at full resolution), inside the body box, joints missing in the "
                            "dataset excluded"),
    Metric.PCK: MetricInfo(
        f"PCK@{PCK_ALPHA}", ".3f", False,
        f"PCK@{PCK_ALPHA}: keypoints from the rendered heatmaps the OpenPose way (Gaussian filter sigma 3 px, "
        "threshold 0.1, connected regions, peak per region) within 0.2 x the ground-truth LShoulder-RHip distance; "
        "ground-truth joints with confidence 0 excluded; views without both torso joints skipped"),
    Metric.COCO_AP: MetricInfo(
        "COCO AP", ".3f", False,
        "COCO keypoint AP (pycocotools COCOeval, OKS 0.50:0.95) of the same keypoints, COCO-17 joints of BODY_25, one "
        "person per view, area = the view's foreground mask; a view without a labelled joint is left out "
        "(ghnerf.eval.metrics.coco_keypoint_ap)"),
    Metric.MPJPE_VOLUMETRIC: MetricInfo(
        "MPJPE vol. (m)", ".3f", True,
        "mean per-joint error (metres) of 3D joints read from a volumetric heatmap: the heatmap head queried on a "
        "4 cm grid over the body's vertex box (+10 cm), weighted by occupancy 1 - exp(-sigma) and averaged over the "
        "frame's evaluated views; per joint the peak, refined to sub-voxel precision "
        "(ghnerf.eval.metrics.volume_peaks)"),
    Metric.MPJPE_TRIANGULATED: MetricInfo(
        "MPJPE tri. (m)", ".3f", True,
        "mean per-joint error (metres) of 3D joints triangulated robustly from the student's 2D keypoints in the "
        "evaluated views of each frame (ghnerf.base.multiview), against the dataset's 3D joints; frames with fewer "
        "than 2 evaluated views are skipped"),
    Metric.CSE_MSE: MetricInfo(
        "CSE MSE", ".4f", True, "mean squared error of the rendered 16-d surface embedding against the CSE teacher's "
                                "targets, over the target's foreground inside the body box (only with --targets and "
                                "--cse-teacher)"),
    Metric.RENDER_SECONDS: MetricInfo("s/view", ".3f", True, "wall time of the network forward pass for one view "
                                                             "(fine level, all box pixels; the source views' "
                                                             "encoding counted at the first view that uses them)"),
    Metric.FPS: MetricInfo("FPS", ".2f", False, "1 / render_seconds"),
}

# The paper's table (PSNR / SSIM / LPIPS / MSE / PCK / MPJPE) plus FPS: the columns of every metrics table.
TABLE_COLUMNS = (Metric.PSNR, Metric.SSIM, Metric.LPIPS, Metric.HEATMAP_MSE, Metric.PCK, Metric.COCO_AP,
                 Metric.MPJPE_VOLUMETRIC, Metric.MPJPE_TRIANGULATED, Metric.FPS)
LOWER_IS_BETTER = tuple(m.value for m, info in METRICS.items() if info.lower_is_better)


def cell(metrics: dict, metric: Metric) -> str:
    """``metrics[metric]`` formatted for a table: its number format, '–' when absent, 'unavailable' for a metric
    recorded as a reason (LPIPS without its weights)."""
    value = metrics.get(metric.value)
    if isinstance(value, float):
        return format(value, METRICS[metric].fmt)
    if isinstance(value, str):
        return "unavailable"
    return "–" if value is None else str(value)


def table_rows(metrics: dict) -> tuple[list[str], list[str]]:
    """(headers, cells) of the metrics table."""
    return [METRICS[m].header for m in TABLE_COLUMNS], [cell(metrics, m) for m in TABLE_COLUMNS]
