"""NEU-DET on disk: its VOC annotations and the fixed train/val/test split (training and evaluation only).

The data lives beside the repository (``../shared/data/defects/neu_det``: ``images/<class>_<id>.jpg``
and ``annotations/<class>_<id>.xml``). An image's class is the prefix of its file name; its boxes
carry their own class names, which differ from the image's class for about 5% of them (an
inclusion on a scratched plate).

The split is stratified and deterministic: within each class the file names are ordered by the
SHA-256 of the name, and the first 70% are ``train``, the next 15% ``val``, the last 15% ``test``
(168/36/36 of the 240 images of each class). ``val`` picks thresholds and checkpoints; ``test`` is
read only for the final report.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from shared.defects.model import LABELS
from shared.platform.settings import PROJECT_ROOT

DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "defects" / "neu_det"
Split = Literal["train", "val", "test", "all"]
SPLITS: tuple[str, ...] = ("train", "val", "test", "all")
SPLIT_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}


@dataclass(frozen=True)
class Sample:
    """One annotated image: its class and its boxes (``x, y, w, h`` pixels) with their class indices."""

    name: str
    image_path: Path
    label: int
    boxes: np.ndarray  # (N, 4) float32 x, y, w, h
    box_labels: np.ndarray  # (N,) int64 indices into LABELS


def image_class(name: str) -> str:
    """``rolled-in_scale_12`` -> ``rolled-in_scale``."""
    label = name.rsplit("_", 1)[0]
    if label not in LABELS:
        raise ValueError(f"{name!r}: the class prefix {label!r} is not one of {LABELS}")
    return label


def read_annotation(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (``x, y, w, h``) and class indices of one VOC xml file."""
    root = ET.parse(path).getroot()  # noqa: S314 - the project's own data files
    boxes, labels = [], []
    for obj in root.findall("object"):
        name = obj.findtext("name", "").strip()
        if name not in LABELS:
            raise ValueError(f"{path.name}: unknown class {name!r}")
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{path.name}: an object without a bndbox")
        x1, y1, x2, y2 = (float(box.findtext(key, "nan")) for key in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([x1, y1, x2 - x1, y2 - y1])
        labels.append(LABELS.index(name))
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)


def load_samples(data_dir: Path = DATA_DIR, split: Split = "all") -> list[Sample]:
    """The annotated images of ``split``, in a stable order (class, then id)."""
    annotations = data_dir / "annotations"
    if not annotations.is_dir():
        raise FileNotFoundError(f"{annotations} is missing: NEU-DET is expected at {data_dir}")
    names = [path.stem for path in annotations.glob("*.xml")]
    if split != "all":
        splits = split_of_all(names)
        names = [name for name in names if splits[name] == split]
    samples = []
    for name in sorted(names, key=_class_then_id):
        boxes, box_labels = read_annotation(annotations / f"{name}.xml")
        samples.append(Sample(name, data_dir / "images" / f"{name}.jpg", LABELS.index(image_class(name)), boxes, box_labels))
    return samples


def split_of_all(names: list[str]) -> dict[str, str]:
    """Each name's split: per class, names ordered by SHA-256, cut 70/15/15."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_class[image_class(name)].append(name)
    splits = {}
    for members in by_class.values():
        members.sort(key=lambda name: hashlib.sha256(name.encode()).hexdigest())
        n_train = round(len(members) * SPLIT_FRACTIONS["train"])
        n_val = round(len(members) * SPLIT_FRACTIONS["val"])
        for index, name in enumerate(members):
            splits[name] = "train" if index < n_train else "val" if index < n_train + n_val else "test"
    return splits


def _class_then_id(name: str) -> tuple[str, int]:
    label, number = name.rsplit("_", 1)
    return label, int(number) if number.isdigit() else 0
