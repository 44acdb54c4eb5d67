"""Keypoints out of the system in standard form: OpenPose JSON, COCO keypoint results, EasyMocap keypoints3d
(``ghnerf export``), from a trained student or from a teacher's shards."""
