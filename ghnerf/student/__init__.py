"""The student: GHNeRF = ENeRF backbone + human feature encoder + heatmap / CSE / coordinate heads."""
