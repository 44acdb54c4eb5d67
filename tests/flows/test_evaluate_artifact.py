"""The evaluation artifact's student-vs-teacher section (Markdown only: no Prefect server needed)."""

import numpy as np

from flows.artifacts import disagreement_markdown
from ghnerf.fileio import write_image


def test_disagreement_section_has_counts_and_embedded_pictures(tmp_path):
    picture = tmp_path / "images" / "disagreement_00.png"
    write_image(picture, np.full((64, 192, 3), 200, np.uint8))
    summary = {"teacher": "mediapipe", "views": 3, "disagreements": 7, "alpha": 0.2,
               "verdicts": {"student": 4, "teacher": 1, "both": 0, "neither": 2, "undecided": 0},
               "per_joint": {"RWrist": 3, "LAnkle": 2}, "pictures": [str(picture)],
               "path": str(tmp_path / "disagreement.json")}
    md = "\n".join(disagreement_markdown(summary))
    assert "Student vs teacher mediapipe" in md and "7 disagreements over 3 views" in md
    assert "| 4 | 1 | 0 | 2 | 0 |" in md and "RWrist (3), LAnkle (2)" in md
    assert md.count("data:image/png;base64,") == 1 and str(tmp_path / "disagreement.json") in md
    assert disagreement_markdown(None) == []
