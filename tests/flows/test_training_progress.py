"""The training's Prefect progress artifacts (flows.artifacts.TrainingProgress), without a server."""

import flows.artifacts as artifacts


def test_2d_pretraining_gets_its_own_progress_artifact(monkeypatch):
    """The training's artifact is made at the start; the 2D pretraining's at its first step, then updated every
    `every` percent and at its last step; the training's artifact is updated by the training steps only."""
    made, updates = [], []
    monkeypatch.setattr(artifacts, "create_progress_artifact",
                        lambda progress, description: made.append((progress, description)) or f"id{len(made)}")
    monkeypatch.setattr(artifacts, "update_progress_artifact",
                        lambda artifact_id, progress, description: updates.append((artifact_id, progress, description)))
    progress = artifacts.TrainingProgress(4, "training X into R", every=25.0)
    assert made == [(0.0, "training X into R")]
    for step in range(1, 11):
        progress.pretrain_step(step, 10, {"loss": 0.5 / step, "lr": 1e-3, "it_s": 9.0})
    assert made[1] == (10.0, "2D pretraining before training X into R") and len(made) == 2
    assert [(i, p) for i, p, _ in updates] == [("id2", 30.0), ("id2", 60.0), ("id2", 90.0), ("id2", 100.0)]
    assert updates[-1][2] == "2D pretraining step 10/10: source heatmap loss 0.05000, 9.0 it/s"
    updates.clear()
    for step in range(1, 5):
        progress(step, {"loss": 0.1, "psnr": 20.0, "it_s": 2.0})
    assert [(i, p) for i, p, _ in updates] == [("id1", 25.0), ("id1", 50.0), ("id1", 75.0), ("id1", 100.0)]


def test_evaluate_and_render_report_their_views_as_progress(monkeypatch):
    """ViewProgress, the evaluate and render flows' on_view / on_frame: one artifact, updated every `every` percent
    of the views and at the last, saying how many are done."""
    made, updates = [], []
    monkeypatch.setattr(artifacts, "create_progress_artifact",
                        lambda progress, description: made.append((progress, description)) or "v")
    monkeypatch.setattr(artifacts, "update_progress_artifact",
                        lambda artifact_id, progress, description: updates.append((progress, description)))
    on_view = artifacts.ViewProgress("evaluating R on its test views", every=40.0)
    for done in range(1, 6):
        on_view(done, 5)
    assert made == [(0.0, "evaluating R on its test views")]
    assert updates == [(40.0, "evaluating R on its test views: 2/5"), (80.0, "evaluating R on its test views: 4/5"),
                       (100.0, "evaluating R on its test views: 5/5")]
