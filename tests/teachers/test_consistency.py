"""The multi-view consistency report flags deliberately corrupted teacher keypoints."""


from ghnerf.app.distill import DistillConfig, plan_shards, run_shard
from ghnerf.base.body25 import BODY25_LR_PAIRS as LR_PAIRS
from ghnerf.base.keypoint_codec import HeatmapCodec
from storage.catalog import Catalog
from storage.root import StorageRoot
from teachers.base import TeacherOutput
from teachers.consistency import shard_consistency
from teachers.gt_joints import GTJointsTeacher


class CorruptingTeacher(GTJointsTeacher):
    """gt-joints, but view 2 of every frame is shifted by 40 px and view 4 has left/right exchanged."""

    name = "corrupting"

    def predict(self, batch):
        outs = super().predict(batch)
        fixed = []
        for i, o in enumerate(outs):
            kp = o.keypoints.copy()
            if i == 2:
                kp[:, 0] += 40.0
            if i == 4:
                for r, l in LR_PAIRS:
                    kp[[r, l]] = kp[[l, r]]
            fixed.append(TeacherOutput(heatmaps=o.heatmaps, keypoints=kp, missing=o.missing, stride=o.stride))
        return fixed


def test_corrupted_views_are_flagged(zju_root, tmp_path):
    teacher = CorruptingTeacher(HeatmapCodec())
    cfg = DistillConfig(teacher="gt-joints", frames_per_shard=3)
    plan = [p for p in plan_shards(zju_root, cfg, teacher) if p.subject == "CoreView_902"][0]
    store = StorageRoot(tmp_path)
    res = run_shard(plan, cfg, teacher, store, consistency_fn=shard_consistency)
    c = res.consistency
    assert c["frames"] == 3 and c["views"] == 18
    assert sorted(c["flagged"]) == sorted([f"{f}/Camera_B3" for f in (0, 1, 2)] + [f"{f}/Camera_B5" for f in (0, 1, 2)])
    assert sorted(c["swap_suspects"]) == [f"{f}/Camera_B5" for f in (0, 1, 2)]
    # the honest views agree to within a pixel (ground truth on undistorted images)
    assert c["per_joint_median_px"]["Neck"] < 1.0
    # and the summary is stored with the shard's lineage
    entry = Catalog(store).find(plan.key)[0]
    assert entry.consistency["flagged"] == c["flagged"]


def test_clean_teacher_is_consistent(zju_root, tmp_path):
    teacher = GTJointsTeacher(HeatmapCodec())
    cfg = DistillConfig(teacher="gt-joints", frames_per_shard=3)
    plan = plan_shards(zju_root, cfg, teacher)[0]
    res = run_shard(plan, cfg, teacher, StorageRoot(tmp_path), consistency_fn=shard_consistency)
    c = res.consistency
    assert c["flagged"] == [] and c["swap_suspects"] == [] and c["median_error_px"] < 0.5
    assert "teacher_views" not in c  # gt-joints has no detector: no detection rate
