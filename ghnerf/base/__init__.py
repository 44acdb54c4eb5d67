"""The base every package may import: errors, cameras, BODY_25, the keypoint codec, file I/O, safe loading,
multi-view geometry, pictures. It imports nothing of this project outside itself."""
