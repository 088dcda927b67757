"""The face detectors by name: the one list that the settings (``VISIONFN_FACE_DETECTOR``), a
request's ``detector`` field, the model table (models.py) and the detectors this process loads
(privacy.py) take their names from. A module of its own, so that the settings and /health read
it without loading OpenCV (detectors.py). The CLI (client/) keeps a copy: a unit test holds it
to this one."""

from __future__ import annotations

from typing import Literal, get_args

Detector = Literal["fused", "combined", "centerface", "retinaface", "mediapipe"]
#: Every name, in the order above.
DETECTORS: tuple[Detector, ...] = get_args(Detector)

#: The fused detector's profiles (``VISIONFN_FACE_PROFILE``, a request's ``profile``): ``default``,
#: and ``thorough``, slower and finding more faces at the cost of more false positives.
Profile = Literal["default", "thorough"]
