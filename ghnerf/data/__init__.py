"""Dataset readers: ZJU-MoCap and RenderPeople (real or synthetic) into :class:`MultiViewFrame` records."""

from ghnerf.data.geometry import bound_mask, near_far
from ghnerf.data.images import ViewImages, load_depth, load_mask, load_surface, load_view
from ghnerf.data.open import LAYOUTS, detect_layout, open_dataset, summarize
from ghnerf.data.records import CameraView, MultiViewFrame, SubjectSummary
from ghnerf.data.splits import Split, SplitConfig, make_split
from ghnerf.data.views import nearest_source_views

__all__ = [
    "LAYOUTS", "CameraView", "MultiViewFrame", "Split", "SplitConfig", "SubjectSummary", "ViewImages",
    "bound_mask", "detect_layout", "load_depth", "load_mask", "load_surface", "load_view", "make_split",
    "near_far", "nearest_source_views", "open_dataset", "summarize",
]
