"""Writers that lay a synthetic subject out exactly as the real datasets are laid out.

File naming comes from the readers' modules (:mod:`ghnerf.data.zju`,
:mod:`ghnerf.data.renderpeople`) so writer and reader cannot drift apart.
Ground truth the real layouts have no place for goes under ``synthetic_gt/``:
``joints3d/<id>.npy`` (25, 3) m; ``keypoints2d/<id>.npy`` (C, 25, 3) raw-image
(x, y, conf); ``depth/<image path>.png`` uint16 mm; ``surface/<image path>.npz``
(``canonical`` float16 (H, W, 3) template coordinates in m, ``label`` uint8);
``vertices/<id>.npy`` (RenderPeople only; ZJU has its own vertex folders);
``template_vertices.npy``; ``meta.json``.
"""

import dataclasses
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ghnerf.data import renderpeople as rp
from ghnerf.data import zju
from ghnerf.data.records import SIDE_DIR
from ghnerf.base.fileio import write_bytes, write_image, write_json, write_npy, write_npz
from ghnerf.synth.body import SurfaceSampling, template_body
from ghnerf.synth.generate import GENERATOR_VERSION, FrameRender, SubjectRig, SynthConfig
from ghnerf.synth.render import ViewRender

M_TO_MM = 1000.0


def _depth_png(view: ViewRender) -> np.ndarray:
    return np.clip(np.round(view.depth * M_TO_MM), 0, 65535).astype(np.uint16)


class _Writer:
    def __init__(self, cfg: SynthConfig, out: Path, sampling: SurfaceSampling):
        self.cfg, self.out, self.sampling = cfg, out, sampling

    def _write_side(self, rig: SubjectRig, root: Path) -> None:
        side = root / SIDE_DIR
        write_npy(side / "template_vertices.npy", self.sampling.rest_vertices(template_body()).astype(np.float32))
        write_json(side / "meta.json", {
            "generator": "ghnerf.synth", "generator_version": GENERATOR_VERSION,
            "config": self.cfg.model_dump(), "subject_index": rig.index,
            "body_shape": dataclasses.asdict(rig.body.shape), "appearance": dataclasses.asdict(rig.appearance),
            "motion": dataclasses.asdict(rig.style),
            "keypoint_confidence": {"visible": 1.0, "self_occluded": 0.5, "outside_image_or_missing": 0.0},
            "units": {"T": "see layout", "depth_png": "millimetres along camera z, 0 = background",
                      "canonical": "metres, template body in rest pose"},
        })

    def _write_view_gt(self, root: Path, rel_png: str, view: ViewRender) -> None:
        side = root / SIDE_DIR
        write_image(side / "depth" / rel_png, _depth_png(view))
        write_npz(side / "surface" / Path(rel_png).with_suffix(".npz"),
                  canonical=np.nan_to_num(view.canonical, nan=0.0).astype(np.float16), label=view.label)

    def end_dataset(self, subjects: list[str]) -> None:
        pass


class ZJUWriter(_Writer):
    """``CoreView_<n>/`` folders with annots.npy, camera image folders, mask/, mask_cihp/, vertices."""

    def subject_name(self, index: int) -> str:
        return f"CoreView_{901 + index}"

    def naming(self, index: int) -> str:
        if self.cfg.zju_naming == "auto":
            return "paren" if index == 0 else "b"
        return self.cfg.zju_naming

    def begin_subject(self, rig: SubjectRig, root: Path) -> None:
        self._ims: list[dict] = []

    def write_frame(self, rig: SubjectRig, root: Path, frame: int, fr: FrameRender) -> None:
        name, naming = self.subject_name(rig.index), self.naming(rig.index)
        rels = [zju.image_relpath(name, c + 1, frame, naming) for c in range(len(rig.cameras))]
        for rel, view in zip(rels, fr.views):
            mrel = zju.mask_relpath(rel)
            write_image(root / rel, view.rgb, self.cfg.jpeg_quality)
            write_image(root / "mask" / mrel, view.mask.astype(np.uint8))
            write_image(root / "mask_cihp" / mrel, view.label)
            self._write_view_gt(root, mrel, view)
        frame_id = zju.frame_id_from_path(rels[0])
        kpts = fr.joints2d.copy()
        if self.cfg.missing_rate > 0:
            drop = np.random.default_rng([rig.seed, frame]).random(kpts.shape[:2]) < self.cfg.missing_rate
            kpts[drop] = 0.0
        self._ims.append({"ims": rels, "kpts2d": kpts.astype(np.float32)})
        verts = fr.vertices.astype(np.float32)
        for d in zju.VERTEX_DIRS:
            write_npy(root / d / f"{frame_id}.npy", verts)
        write_npy(root / SIDE_DIR / "joints3d" / f"{frame_id}.npy", fr.joints3d)
        write_npy(root / SIDE_DIR / "keypoints2d" / f"{frame_id}.npy", fr.joints2d)

    def end_subject(self, rig: SubjectRig, root: Path) -> None:
        cams = {
            "K": [c.K for c in rig.cameras],
            "R": [c.R for c in rig.cameras],
            "T": [(c.T * M_TO_MM).reshape(3, 1) for c in rig.cameras],
            "D": [c.D.reshape(5, 1) for c in rig.cameras],
        }
        write_npy(root / zju.ANNOTS, np.array({"cams": cams, "ims": self._ims}, dtype=object), allow_pickle=True)
        self._write_side(rig, root)


class RenderPeopleWriter(_Writer):
    """``seq_XXXXXX-rp_synthetic_XX_rigged_001/`` folders as in SHERF's RenderPeople_recon, plus human_list.txt."""

    def subject_name(self, index: int) -> str:
        return f"seq_{index:06d}-rp_synthetic_{index:03d}_rigged_001"

    def begin_subject(self, rig: SubjectRig, root: Path) -> None:
        self._orient: list[np.ndarray] = []
        self._transl: list[np.ndarray] = []

    def write_frame(self, rig: SubjectRig, root: Path, frame: int, fr: FrameRender) -> None:
        for c, view in enumerate(fr.views):
            write_image(root / rp.image_relpath(c, frame), view.rgb, self.cfg.jpeg_quality)
            write_image(root / rp.mask_relpath(c, frame), (view.mask * 255).astype(np.uint8))
            self._write_view_gt(root, f"{rp.camera_name(c)}/{frame:04d}.png", view)
        side = root / SIDE_DIR
        write_npy(side / "vertices" / f"{frame:04d}.npy", fr.vertices.astype(np.float32))
        write_npy(side / "joints3d" / f"{frame:04d}.npy", fr.joints3d)
        write_npy(side / "keypoints2d" / f"{frame:04d}.npy", fr.joints2d)
        self._orient.append(Rotation.from_matrix(fr.posed.rotations[0]).as_rotvec())
        self._transl.append(fr.posed.translations[0].copy())

    def end_subject(self, rig: SubjectRig, root: Path) -> None:
        cams = {rp.camera_name(c): {"K": cam.K.tolist(), "R": cam.R.tolist(), "T": cam.T.tolist()}
                for c, cam in enumerate(rig.cameras)}
        write_json(root / rp.CAMERAS, cams)
        n = len(self._transl)
        # The synthetic body is not SMPL: only the root orientation and translation are meaningful here.
        smpl = {"betas": np.zeros((1, 10)), "global_orient": np.stack(self._orient),
                "body_pose": np.zeros((n, 69)), "transl": np.stack(self._transl)}
        write_npz(root / rp.SMPL_FIT, smpl=np.array(smpl, dtype=object))
        self._write_side(rig, root)

    def end_dataset(self, subjects: list[str]) -> None:
        listed = []
        hl = self.out / rp.HUMAN_LIST
        if hl.is_file():
            listed = [ln.strip() for ln in hl.read_text().splitlines() if ln.strip()]
        names = listed + [s for s in subjects if s not in listed]
        write_bytes(hl, ("\n".join(names) + "\n").encode())


def make_writer(cfg: SynthConfig, out: Path, sampling: SurfaceSampling) -> _Writer:
    return (ZJUWriter if cfg.layout == "zju" else RenderPeopleWriter)(cfg, out, sampling)
