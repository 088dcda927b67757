"""2D and 3D matching: template, keypoint feature and surface (PPF + ICP) matching."""
