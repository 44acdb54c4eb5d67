"""Outlier tolerances of the robust triangulation (:func:`ghnerf.base.multiview.consistency_report`), as a share
of each view's keypoint-box diagonal: declared here, without heavy imports, so that configs can name them."""

# consistency_report's default: many views (dataset checks, the label ceiling); also what student checkpoints
# written before StudentConfig.hypothesis_rel_threshold triangulated their hypotheses with.
REL_THRESHOLD = 0.05

# For a pose network's keypoints of a few (2-4) source views: the triangulated-teacher rival and the student's joint
# hypotheses. The best of 0.05 / 0.1 / 0.15 / 0.2 on the student benchmark's 128 held-out views (MediaPipe):
# PCK 0.774 / 0.826 / 0.873 at K = 2 / 3 / 4 with 0.05, 0.781 / 0.848 / 0.876 with 0.1, 0.781 / 0.844 / 0.861 with
# 0.15, 0.781 / 0.831 / 0.846 with 0.2 (benchmarks/triangulation_tolerance.py; issue 23 quotes 0.849 at K = 3).
FEW_VIEWS_REL_THRESHOLD = 0.1
