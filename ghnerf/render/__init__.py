"""Free-viewpoint output of a trained student: virtual camera paths, the student's input for any camera,
video panels and video files (``ghnerf render``)."""
