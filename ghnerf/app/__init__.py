"""The application: CLI, doctor, pipeline, distillation, retraining, the model registry, option parsing, process exit.
It composes the libraries (storage, teachers, data, student, eval, render, export); nothing below imports it."""
