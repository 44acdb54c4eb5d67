"""Training / evaluation examples for the student: a target view, its source views, and its targets.

Targets: the target image and mask; heatmaps either drawn from the dataset's own 2D
joints (``heatmaps="dataset"``, the paper's ZJU-MoCap setting) or read from a
teacher's shards (:class:`storage.targets.TargetStore`); optional CSE targets from a
CSE teacher's shards. Teacher heatmaps can be fused over the views of each frame first
(``fusion``: robust triangulation, reprojected into every view; :mod:`ghnerf.target_fusion`).
Images are undistorted and scaled by ``image_scale`` (ENeRF's ``input_ratio``); the
background outside the dilated mask is zeroed as ENeRF does.
"""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ghnerf.base.cameras import Camera
from ghnerf.base.errors import ConfigError, GHNeRFError
from ghnerf.base.keypoint_codec import OPENPOSE_SIGMA_PX, HeatmapCodec, empty_keypoints
from ghnerf.base.kinds import HeatmapSource, TargetKind
from ghnerf.data import bound_mask, load_view, make_split, near_far, nearest_source_views, open_dataset
from ghnerf.data.images import pinhole
from ghnerf.data.splits import SplitConfig, cameras_for_sources
from ghnerf.data.views import MIN_SOURCE_VIEWS, source_view_count
from ghnerf.student.model_io import MultiViewBatch, SourcePhotos
from ghnerf.target_fusion import FusionConfig, fuse_keypoints

ENERF_TRAIN_DILATE = 5


@dataclass(frozen=True, eq=False)
class Example:
    """One target view with everything the losses and metrics need (tensors, CPU).

    Attributes:
        key: (subject, frame_id, camera name).
        batch: the model input.
        image: (H, W, 3) target RGB in [0, 1] (background zeroed).
        mask: (H, W) bool foreground (not dilated).
        box: (H, W) bool projected body box.
        heatmaps: (J, H, W) target heatmaps or None; joint_valid: (J,) bool.
        joints2d: (J, 3) target-view joints (scaled pixels, conf) or None; joints3d: (J, 3) world or None.
        cse: (16, H, W) or None; cse_mask: (H, W) bool or None.
        bounds: (2, 3) world box of the body's vertices (metres) or None.
        src_heatmaps: (V, J, H, W) heatmap targets of the source views (same kind as ``heatmaps``) or None;
            src_joint_valid: (V, J) bool.
    """

    key: tuple[str, int, str]
    batch: MultiViewBatch
    image: torch.Tensor
    mask: torch.Tensor
    box: torch.Tensor
    heatmaps: torch.Tensor | None
    joint_valid: torch.Tensor | None
    joints2d: torch.Tensor | None
    joints3d: torch.Tensor | None
    cse: torch.Tensor | None
    cse_mask: torch.Tensor | None
    bounds: np.ndarray | None = None
    src_heatmaps: torch.Tensor | None = None
    src_joint_valid: torch.Tensor | None = None


def _scaled_view(view, scale: float, dilate: int):
    """A view's undistorted image, mask and intrinsics scaled by ``scale``, and the view as loaded (its camera, its
    photograph before scaling)."""
    vi = load_view(view, dilate=dilate)
    img, mask = vi.image, vi.mask
    if scale != 1.0:
        h, w = int(round(img.shape[0] * scale)), int(round(img.shape[1] * scale))
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    K = vi.camera.K.copy()
    K[:2] *= scale
    return img, mask, K, vi


def source_batch(frame, sources: list[int], scale: float, target: Camera) -> MultiViewBatch:
    """The student's input for ``target`` (a pinhole camera at the scaled image size, which need not be a capture
    camera) seen from the capture views ``sources`` of ``frame``, each undistorted, scaled by ``scale`` and masked
    as in training; at a scale other than 1 with the photographs before scaling (``MultiViewBatch.src_photos``)."""
    src_imgs, src_raw, src_K, src_w2c = [], [], [], []
    photos = None if scale == 1.0 else []
    for s in sources:
        im, m, Ks, loaded = _scaled_view(frame.views[s], scale, ENERF_TRAIN_DILATE)
        if photos is not None:
            photos.append(loaded.photo)
        src_raw.append(im)
        src_imgs.append(im * m[..., None])
        src_K.append(Ks)
        src_w2c.append(loaded.camera.world_to_cam)
    return MultiViewBatch(
        src_images=torch.from_numpy(np.stack(src_imgs)).permute(0, 3, 1, 2).float(),
        src_K=torch.from_numpy(np.stack(src_K)).float(), src_w2c=torch.from_numpy(np.stack(src_w2c)).float(),
        tgt_K=torch.from_numpy(target.K).float(), tgt_w2c=torch.from_numpy(target.world_to_cam).float(),
        near_far=torch.tensor(near_far(frame, target), dtype=torch.float32),
        src_images_unmasked=torch.from_numpy(np.stack(src_raw)).permute(0, 3, 1, 2).float(),
        src_photos=None if photos is None else SourcePhotos(tuple(photos), scale))


def _resize_maps(maps: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0]


class ExampleSet:
    """Every (subject, frame, target camera) of one split, with nearest source views.

    Args:
        dataset_root: dataset folder (either layout).
        split: "train" (targets and sources: training cameras of training subjects) or "test"
            (targets: test cameras of test subjects, or of the training subjects when the dataset has no test
            subject, ``Split.held_out == "cameras"``; sources: their training cameras).
        source_views: source views per target; a target with fewer other training cameras gets as many as it
            has, down to ``fewest_source_views`` (:func:`~ghnerf.data.views.source_view_count`; said by
            :meth:`notices`).
        image_scale: resize factor of every image (ENeRF ``input_ratio``).
        heatmaps: where the heatmap targets come from (:class:`~ghnerf.base.kinds.HeatmapSource`).
        heatmap_store: a :class:`storage.targets.TargetStore` of a pose teacher (for ``heatmaps="store"``).
        cse_store: a TargetStore of a CSE teacher, or None.
        split_config: subject / frame split options.
        fusion: with ``heatmaps="store"``, replace each view's teacher heatmaps by Gaussians at the teacher's
            keypoints fused over all the frame's views the teacher labelled (None: the teacher's own heatmaps).
        source_targets: also give each example its source views' heatmap targets (for a student with a
            source heatmap head; ``Example.src_heatmaps``).
        fewest_source_views: the fewest source views a target may get (2, ENeRF's minimum; ``source_views``:
            exactly as many as asked for, e.g. an explicit ``evaluate --source-views``).
    """

    def __init__(self, dataset_root: str | Path, split: str = "train", source_views: int = 3,
                 image_scale: float = 0.5, heatmaps: HeatmapSource | str = HeatmapSource.DATASET, heatmap_store=None,
                 cse_store=None,
                 split_config: SplitConfig | None = None, subjects: list[str] | None = None,
                 fusion: FusionConfig | None = None, source_targets: bool = False,
                 fewest_source_views: int = MIN_SOURCE_VIEWS):
        if split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test', not {split!r}")
        heatmaps = HeatmapSource(heatmaps)
        if heatmaps == HeatmapSource.STORE and heatmap_store is None:
            raise ConfigError("heatmaps='store' needs a teacher TargetStore (pass --targets and --teacher)")
        if fusion is not None and heatmaps != HeatmapSource.STORE:
            raise ConfigError("fused targets need teacher heatmaps (heatmaps='store', --targets and --teacher)")
        if source_targets and heatmaps == HeatmapSource.NONE:
            raise ConfigError("source heatmap targets need heatmap targets (heatmaps='dataset' or 'store')")
        self.fusion, self.source_targets = fusion, source_targets
        self._fused: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self._frames: dict[tuple[str, int], object] = {}  # (subject, frame index) -> the reader's frame
        self.reader = open_dataset(dataset_root)
        self.scale, self.source_views, self.heatmaps = image_scale, source_views, heatmaps
        self.fewest_source_views = min(source_views, fewest_source_views)
        self.heatmap_store, self.cse_store = heatmap_store, cse_store
        names = self.reader.subjects()
        first = self.reader.sequence(names[0])
        sp = make_split(names, first.num_frames, first.num_cameras, split_config)
        self.split, self.split_name = sp, split
        chosen = subjects or (list(sp.train_subjects) if split == "train" else list(sp.test_subjects))
        if not chosen:
            raise ConfigError(f"the {split} split of {dataset_root} has no subjects ({len(names)} in the dataset)")
        self.source_cameras = sp.train_cameras
        target_cams = sp.train_cameras if split == "train" else sp.test_cameras
        self.items = []
        for name in chosen:
            seq = self.reader.sequence(name)
            for f in sp.frames:
                if f < seq.num_frames:
                    self.items.extend((name, f, c) for c in target_cams)
        self.codec = HeatmapCodec(stride=1, sigma=OPENPOSE_SIGMA_PX * image_scale)
        self._excluded: dict[tuple[str, int], set[int]] = {}  # (subject, frame index) -> cameras left out
        self.excluded: list[dict] = []  # the bad files behind them ({"path", "problem", "view"})
        self.without_targets = 0
        self._check_source_cameras()
        if heatmaps == HeatmapSource.STORE or cse_store is not None:
            self._keep_items_with_targets()

    def _keep_items_with_targets(self) -> None:
        """Drop views the teacher stores have no target for (frames not distilled yet, views the teacher failed).

        Raises:
            ConfigError: no view of the split has targets.
        """
        stores = ((self.heatmap_store, TargetKind.HEATMAP), (self.cse_store, TargetKind.CSE))
        wanted = [(store, kind) for store, kind in stores
                  if store is not None and (kind != TargetKind.HEATMAP or self.heatmaps == HeatmapSource.STORE)]
        available = [set(store.keys(kind)) for store, kind in wanted]
        kept = []
        for subject, f, cam in self.items:
            frame = self.reader.sequence(subject).frame(f)
            key = (subject, frame.frame_id, frame.views[cam].name)
            if all(key in keys for keys in available):
                kept.append((subject, f, cam))
        self.without_targets = len(self.items) - len(kept)
        if not kept:
            raise ConfigError(f"none of the {len(self.items)} views of this split has targets in "
                              f"{', '.join(store.root.url for store, _ in wanted)}; distill the split's frames first")
        self.items = kept

    def __len__(self) -> int:
        return len(self.items)

    def _candidates(self, subject: str, f: int) -> list[int]:
        """Source cameras of one frame (without views left out by :meth:`exclude_views`)."""
        left_out = self._excluded.get((subject, f), ())
        return [c for c in self.source_cameras if c not in left_out]

    def _pool(self, subject: str, f: int, cam: int) -> list[int]:
        """Cameras that can be sources of target ``cam`` of one frame (its candidates without the target)."""
        return [c for c in self._candidates(subject, f) if c != cam]

    def _source_count(self, subject: str, f: int, cam: int, wanted: int | None = None) -> int | None:
        """Source views of one item when ``wanted`` (default ``source_views``) are asked for (fewer with few
        cameras), or None: too few."""
        return source_view_count(wanted or self.source_views, len(self._pool(subject, f, cam)),
                                 self.fewest_source_views)

    def _check_source_cameras(self) -> None:
        """Refuse a capture in which a target camera has too few other training cameras to take sources from.

        Raises:
            ConfigError: naming the dataset, the camera and the number of cameras needed.
        """
        for subject, f, cam in self.items:
            if self._source_count(subject, f, cam) is None:
                have, need = len(self._pool(subject, f, cam)), self.fewest_source_views
                name = self.reader.sequence(subject).frame(f).views[cam].name
                fix = (f"ask for at most {have} (--source-views {have})" if have >= MIN_SOURCE_VIEWS else
                       f"use a capture of at least {cameras_for_sources(need)} cameras (every other camera is a "
                       "training camera)")
                raise ConfigError(f"{self.reader.root}: need {need} source views for {self.split_name} camera {name} "
                                  f"of {subject} but only {have} training camera(s) to take them from; {fix}")

    def source_view_counts(self) -> dict[str, int]:
        """How many items get each number of source views (``{"2": 12, "3": 4}``; recorded in run.json)."""
        counts = Counter(self._source_count(*item) for item in self.items)
        return {str(n): counts[n] for n in sorted(counts)}

    def notices(self) -> list[str]:
        """One line per choice this set made for its dataset: cameras held out instead of subjects, fewer source
        views than asked for."""
        root = str(self.reader.root)
        lines = [self.split.notice(root)] if self.split.held_out == "cameras" else []
        fewer = {int(n): c for n, c in self.source_view_counts().items() if int(n) < self.source_views}
        if fewer:
            cameras = len(self.split.train_cameras) + len(self.split.test_cameras)
            lines.append(f"{root}: {cameras} cameras{' and excluded views' if self.excluded else ''}: "
                         f"{sum(fewer.values())} of the {len(self)} {self.split_name} views have fewer than "
                         f"{self.source_views} other training cameras, so they take {' or '.join(map(str, fewer))} "
                         f"source views instead of {self.source_views} (as ENeRF mixes 2 and 3)")
        return lines

    def check_views(self, only_first: bool = False) -> list[dict]:
        """Check every view this set can use, from file headers and sizes (no pixel decoded).

        The views of a frame that can be used are its items' target views and the frame's source cameras.

        Args:
            only_first: check only the first item's target and source views (a validation set that shows
                one example).
        Returns:
            ``{"path", "problem", "view", "key": (subject, frame index, camera)}`` per bad file (empty: all good).
        """
        from ghnerf.data.images import view_problems

        wanted: dict[tuple[str, int], set[int]] = {}
        items = self.items[:1] if only_first else self.items
        for index, (subject, f, cam) in enumerate(items):
            sources = self.sources(index) if only_first else self._candidates(subject, f)
            wanted.setdefault((subject, f), set()).update([cam, *sources])
        bad = []
        for (subject, f), cams in wanted.items():
            frame = self.reader.sequence(subject).frame(f)
            for c in sorted(cams):
                view = frame.views[c]
                for path, problem in view_problems(view):
                    bad.append({"path": path, "problem": problem, "view": f"{subject}/{frame.frame_id}/{view.name}",
                                "key": (subject, f, c)})
        return bad

    def blank_mask_subjects(self) -> list[tuple[str, str, int]]:
        """Subjects whose every target-view mask is blank (no foreground pixel): ``(subject, first mask file,
        masks read)`` each. Reading stops at a subject's first mask with foreground (usually its first);
        files that cannot be read are left to :meth:`check_views`."""
        from ghnerf.data.images import load_mask

        views: dict[str, list] = {}
        for subject, f, c in self.items:
            views.setdefault(subject, []).append(self.reader.sequence(subject).frame(f).views[c])
        blank = []
        for subject, vs in views.items():
            read = 0
            for v in vs:
                try:
                    mask = load_mask(v, undistort=False)
                except GHNeRFError:
                    continue
                read += 1
                if mask.any():
                    break
            else:
                if read:
                    blank.append((subject, str(vs[0].mask_paths[0]), read))
        return blank

    def exclude_views(self, bad: list[dict]) -> int:
        """Leave the views of ``bad`` (from :meth:`check_views`) out: as targets and as sources.

        Items whose target is bad, or whose frame has too few good source views left, are dropped.
        Returns:
            the number of items dropped.
        Raises:
            ConfigError: no item is left.
        """
        for subject, f, c in {b["key"] for b in bad}:
            self._excluded.setdefault((subject, f), set()).add(c)
        self.excluded += [{k: b[k] for k in ("path", "problem", "view")} for b in bad]
        kept = [(s, f, c) for s, f, c in self.items if c not in self._excluded.get((s, f), ())
                and self._source_count(s, f, c) is not None]
        dropped = len(self.items) - len(kept)
        if not kept:
            raise ConfigError(f"no usable view is left in the {len(self.items)} views of this split once the bad "
                              f"views are excluded (each needs {self.fewest_source_views} good "
                              "source views among the frame's other training cameras); fix the files listed above")
        self.items = kept
        return dropped

    def fused_keypoints(self, subject: str, frame) -> dict[str, np.ndarray]:
        """Camera name -> (25, 3) fused teacher keypoints (full-resolution undistorted pixels) of one frame.

        Every view of the frame that has teacher heatmaps takes part (test cameras of a training subject
        too: they are the same training subject). Cached per frame.
        """
        key = (subject, frame.frame_id)
        if key not in self._fused:
            cams, kps, names = [], [], []
            for v in frame.views:
                try:
                    kp = self.heatmap_store.keypoints(subject, frame.frame_id, v.name)
                except KeyError:
                    continue
                cams.append(pinhole(v.camera))
                kps.append(kp)
                names.append(v.name)
            fused = fuse_keypoints(cams, np.stack(kps), self.fusion).keypoints if len(cams) >= 2 else None
            self._fused[key] = {} if fused is None else dict(zip(names, fused))
        return self._fused[key]

    def shard_refs(self) -> list[dict]:
        """Shards the targets come from (recorded in checkpoints for lineage)."""
        refs = []
        for store in (self.heatmap_store, self.cse_store):
            if store is not None:
                refs += [{"store": store.root.url, "shard_key": e.shard_key, "shard_path": e.shard_path,
                          "sha256": e.shard_sha256, "teacher": e.teacher, "weights_sha256": e.weights_sha256}
                         for e in store.entries]
        return refs

    def _frame(self, subject: str, f: int):
        """The reader's frame ``f`` of ``subject`` (paths, cameras and joints; no pixels), read once."""
        if (subject, f) not in self._frames:
            self._frames[subject, f] = self.reader.sequence(subject).frame(f)
        return self._frames[subject, f]

    def sources(self, index: int, source_views: int | None = None) -> list[int]:
        """Camera indices of item ``index``'s source views, nearest first (the views the student sees).

        Args:
            source_views: how many to take (default: the set's ``source_views``; fewer with few cameras).
        """
        subject, f, cam = self.items[index]
        frame = self._frame(subject, f)
        wanted = source_views or self.source_views
        count = self._source_count(subject, f, cam, wanted) or wanted  # None: nearest_source_views says why
        return nearest_source_views([v.camera for v in frame.views], cam, self._pool(subject, f, cam), count)

    def target_mask(self, index: int) -> np.ndarray:
        """(H, W) bool foreground of item ``index``'s target view at the set's image scale (``Example.mask``)."""
        subject, f, cam = self.items[index]
        return _scaled_view(self._frame(subject, f).views[cam], self.scale, 0)[1]

    def example(self, index: int, source_views: int | None = None) -> Example:
        """Item ``index`` with its nearest source views (``source_views`` of them, default the set's; training
        with a mix of counts draws one per example, ``TrainConfig.source_view_mix``)."""
        subject, f, cam = self.items[index]
        frame = self._frame(subject, f)
        srcs = self.sources(index, source_views)
        tgt_view = frame.views[cam]
        raw_img, raw_mask, K, loaded = _scaled_view(tgt_view, self.scale, 0)
        H, W = raw_img.shape[:2]
        box_cam = type(loaded.camera)(K, loaded.camera.R, loaded.camera.T, np.zeros(5), H, W)
        box = bound_mask(frame, box_cam)
        batch = source_batch(frame, srcs, self.scale, box_cam)
        joints2d = None
        if tgt_view.joints2d is not None:
            j = tgt_view.joints2d.copy()
            j[:, :2] *= self.scale
            joints2d = torch.from_numpy(j).float()
        heatmaps, valid = self._heatmap_targets(subject, frame, tgt_view, (H, W))
        src_heatmaps = src_valid = None
        if self.source_targets:
            per_source = [self._heatmap_targets(subject, frame, frame.views[s], (H, W), optional=True) for s in srcs]
            src_heatmaps = torch.stack([hm for hm, _ in per_source])
            src_valid = torch.stack([v if v is not None else torch.ones(len(hm), dtype=torch.bool)
                                     for hm, v in per_source])
        cse = cse_mask = None
        if self.cse_store is not None:
            t = self.cse_store.get(subject, frame.frame_id, tgt_view.name, TargetKind.CSE)
            cse = F.interpolate(torch.from_numpy(t.array)[None], size=(H, W), mode="nearest")[0]
            cse_mask = F.interpolate(torch.from_numpy(t.mask)[None, None].float(), size=(H, W),
                                     mode="nearest")[0, 0].bool()
        image = torch.from_numpy(raw_img * raw_mask[..., None]).float()
        return Example((subject, frame.frame_id, tgt_view.name), batch, image, torch.from_numpy(raw_mask),
                       torch.from_numpy(box), heatmaps, valid, joints2d,
                       None if frame.joints3d is None else torch.from_numpy(frame.joints3d).float(), cse, cse_mask,
                       frame.bounds, src_heatmaps, src_valid)

    def _heatmap_targets(self, subject: str, frame, view, size: tuple[int, int],
                         optional: bool = False) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Heatmap targets (J, H, W) and joint validity (J,) of one view at the scaled image size, or (None, None)
        when the set has no heatmaps. ``optional``: a view without teacher targets gets all-zero, all-invalid
        maps instead of a KeyError (source views)."""
        H, W = size
        if self.heatmaps == HeatmapSource.DATASET:
            if view.joints2d is None:
                raise ConfigError(f"{subject}: the dataset has no 2D joints for heatmap targets; distill a pose "
                                  "teacher and train with --targets/--teacher")
            kp = view.joints2d.copy()
        elif self.heatmaps == HeatmapSource.STORE and self.fusion is not None:
            kp = self.fused_keypoints(subject, frame).get(view.name)
            kp = empty_keypoints() if kp is None else kp.copy()
        elif self.heatmaps == HeatmapSource.STORE:
            try:
                t = self.heatmap_store.get(subject, frame.frame_id, view.name, TargetKind.HEATMAP)
            except KeyError:
                if not optional:
                    raise
                kp = empty_keypoints()
            else:
                valid = torch.from_numpy(~t.joint_missing) if t.joint_missing is not None else None
                return _resize_maps(t.array, (H, W)), valid
        else:
            return None, None
        kp[:, :2] *= self.scale
        hm, missing = self.codec.encode(kp, H, W)
        return torch.from_numpy(hm), torch.from_numpy(~missing)
