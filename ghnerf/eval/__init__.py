"""Evaluation of the student: image metrics, keypoints from heatmaps, PCK, 3D keypoints (pure functions)."""
