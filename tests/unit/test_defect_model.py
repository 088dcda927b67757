"""The shipped defect model and its decoding: loads, classifies dev images, boxes stay in the
image, every documented input form works, and bad input is a clear ValueError."""

import cv2
import numpy as np
import pytest

import shared.defects.settings
from shared.defects.model import LABELS, SHIPPED_MODEL, Defect, DefectModel, Inspection, decode, to_grey, unmirror
from shared.defects.settings import DefectSettings
from tests.conftest import SHARED_DATA
from tools.defects.dataset import SPLIT_FRACTIONS, load_samples, split_of_all

NEU_DET = SHARED_DATA / "defects" / "neu_det"
PER_CLASS = 3  # dev (val split) images checked per class


@pytest.fixture(scope="module")
def model():
    return DefectModel.load()


@pytest.fixture(scope="module")
def dev_samples():
    if not NEU_DET.is_dir():
        raise FileNotFoundError(f"{NEU_DET} is missing: the tests expect ../shared/data beside the repository")
    samples = load_samples(NEU_DET, "val")
    return [sample for label in range(len(LABELS)) for sample in [s for s in samples if s.label == label][:PER_CLASS]]


def _grey(sample):
    return cv2.imread(str(sample.image_path), cv2.IMREAD_GRAYSCALE)


def test_shipped_model_is_small_and_loads(model):
    assert SHIPPED_MODEL.stat().st_size < 10_000_000
    assert model.input_size == (200, 200)


def test_dev_images_of_each_class_get_their_class_and_boxes_inside(model, dev_samples):
    """Crazing is checked from score 0.1: its peaks are weak, and about a third of its val images
    have none at the reporting threshold (the model card's limitation)."""
    assert len(dev_samples) == PER_CLASS * len(LABELS)
    for sample in dev_samples:
        image = _grey(sample)
        inspection = model.inspect(image, **({"min_score": 0.1} if LABELS[sample.label] == "crazing" else {}))
        assert isinstance(inspection, Inspection)
        assert inspection.label == LABELS[sample.label], sample.name
        assert 0.0 <= inspection.score <= 1.0
        assert inspection.defects, f"{sample.name}: no defect located"
        scores = [defect.score for defect in inspection.defects]
        assert scores == sorted(scores, reverse=True)
        for defect in inspection.defects:
            x, y, w, h = defect.box
            assert all(isinstance(value, int) for value in defect.box)
            assert defect.label in LABELS and 0.0 <= defect.score <= 1.0
            assert x >= 0 and y >= 0 and w >= 1 and h >= 1
            assert x + w <= image.shape[1] and y + h <= image.shape[0]


def test_a_located_defect_overlaps_a_labelled_one(model, dev_samples):
    from shared.vision.boxes import pairwise_iou

    best = [pairwise_iou(np.array([d.box for d in model.inspect(_grey(s)).defects][:5]), s.boxes).max(initial=0.0) for s in dev_samples]
    assert np.mean(np.array(best) >= 0.3) >= 0.8


@pytest.mark.parametrize("shape", [(200, 200), (200, 200, 1), (200, 200, 3), (1, 1), (7, 3), (3, 7, 3), (1080, 1920, 3), (1080, 1920)])
def test_every_input_form_and_size_works(model, dev_samples, shape):
    image = cv2.resize(_grey(dev_samples[0]), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    if len(shape) == 3:
        image = np.repeat(image[:, :, None], shape[2], axis=2)
    inspection = model.inspect(image)
    assert inspection.label in LABELS
    for defect in inspection.defects:
        x, y, w, h = defect.box
        assert 0 <= x and 0 <= y and w >= 1 and h >= 1 and x + w <= shape[1] and y + h <= shape[0]


def test_a_large_picture_gives_boxes_in_its_own_pixels(model, dev_samples):
    sample = dev_samples[2 * PER_CLASS]  # patches: confident, well-separated boxes
    small = model.inspect(_grey(sample), min_score=0.1)
    large = model.inspect(cv2.resize(_grey(sample), (1920, 1080), interpolation=cv2.INTER_LINEAR), min_score=0.1)
    assert large.label == small.label
    x, y, w, h = large.defects[0].box
    sx, sy, sw, sh = small.defects[0].box
    assert abs(x - sx * 9.6) <= 30 and abs(w - sw * 9.6) <= 40 and abs(y - sy * 5.4) <= 20 and abs(h - sh * 5.4) <= 25


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((200, 200), np.float32), "must be uint8, got float32"),
        (np.zeros((200, 200), np.int16), "must be uint8, got int16"),
        (np.zeros((0, 0), np.uint8), "empty"),
        (np.zeros((0, 200, 3), np.uint8), "empty"),
        (np.zeros((200, 200, 2), np.uint8), r"HxW grey or HxWx3 RGB, got shape \(200, 200, 2\)"),
        (np.zeros((200, 200, 4), np.uint8), "HxWx3 RGB"),
        (np.zeros((1, 200, 200, 3), np.uint8), "HxWx3 RGB"),
        (np.zeros(200, np.uint8), "HxWx3 RGB"),
        ([[0, 1], [2, 3]], "must be a numpy array, got list"),
    ],
)
def test_bad_images_are_a_clear_value_error(model, image, message):
    with pytest.raises(ValueError, match=message):
        model.inspect(image)


def test_rgb_is_converted_with_luma():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 1] = 200
    assert to_grey(rgb).tolist() == [[117, 117], [117, 117]]  # 0.587 * 200


def test_the_setting_names_the_operator_model(monkeypatch, tmp_path):
    fake = tmp_path / "operator.onnx"
    fake.write_bytes(b"not an onnx model")
    monkeypatch.setattr(shared.defects.settings, "get_defect_settings", lambda: DefectSettings(defect_model_path=fake))
    with pytest.raises(ValueError, match=r"operator\.onnx is not a readable ONNX model"):
        DefectModel.load()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DefectModel.load(tmp_path / "missing.onnx")


def test_decode_keeps_local_peaks_above_the_threshold_per_class():
    probs = np.array([0.1, 0.7, 0.05, 0.05, 0.05, 0.05], np.float32)
    heatmap = np.zeros((6, 5, 5), np.float32)
    heatmap[1, 2, 2], heatmap[1, 2, 3] = 0.9, 0.8  # 0.8 is no local peak
    heatmap[5, 0, 0] = 0.2  # below the threshold
    heatmap[3, 4, 4] = 0.5
    boxes = np.zeros((4, 5, 5), np.float32)
    boxes[:, 2, 2] = (20, 20, 10, 8)  # cx, cy, w, h in model pixels
    boxes[:, 4, 4] = (38, 38, 10, 10)  # partly outside a 40 x 40 input
    found = decode(probs, heatmap, boxes, scale=(2.0, 0.5), image_size=(80, 20), min_score=0.3)
    assert found.label == "inclusion" and found.score == pytest.approx(0.7)
    assert found.defects == (
        Defect("inclusion", pytest.approx(0.9), (30, 8, 20, 4)),
        Defect("pitted_surface", pytest.approx(0.5), (66, 16, 14, 4)),
    )


def test_decode_votes_a_kept_box_from_the_overlapping_boxes_of_its_class():
    probs = np.full(6, 1 / 6, np.float32)
    heatmap = np.zeros((6, 5, 5), np.float32)
    heatmap[0, 2, 2], heatmap[0, 2, 3] = 0.6, 0.2  # one peak and a neighbour that votes
    heatmap[0, 0, 0] = 0.04  # below VOTE_MIN_SCORE: no vote (and no peak above min_score)
    boxes = np.zeros((4, 5, 5), np.float32)
    boxes[:, 2, 2] = (20, 20, 20, 20)  # x 10..30
    boxes[:, 2, 3] = (24, 20, 20, 20)  # x 14..34: IoU 0.67 with the peak's box
    boxes[:, 0, 0] = (22, 20, 20, 20)
    voted = decode(probs, heatmap, boxes, scale=(1.0, 1.0), image_size=(40, 40), min_score=0.3)
    assert voted.defects == (Defect("crazing", pytest.approx(0.6), (11, 10, 20, 20)),)  # x1 = (0.6 * 10 + 0.2 * 14) / 0.8
    plain = decode(probs, heatmap, boxes, scale=(1.0, 1.0), image_size=(40, 40), min_score=0.3, vote_iou=None)
    assert plain.defects == (Defect("crazing", pytest.approx(0.6), (10, 10, 20, 20)),)
    strict = decode(probs, heatmap, boxes, scale=(1.0, 1.0), image_size=(40, 40), min_score=0.3, vote_iou=0.7)
    assert strict.defects == plain.defects


def test_unmirror_maps_cells_and_centres_back():
    probs = np.arange(6, dtype=np.float32)
    heatmap = np.zeros((6, 5, 5), np.float32)
    heatmap[2, 1, 0] = 0.9  # leftmost column of the mirrored input: rightmost of the original
    boxes = np.zeros((4, 5, 5), np.float32)
    boxes[:, 1, 0] = (3, 12, 6, 8)
    back_probs, back_heat, back_boxes = unmirror(probs, heatmap, boxes, input_width=40)
    assert back_probs.tolist() == probs.tolist()
    assert back_heat[2, 1, 4] == pytest.approx(0.9) and back_heat.sum() == pytest.approx(0.9)
    assert back_boxes[:, 1, 4].tolist() == [37, 12, 6, 8]


def test_a_mirrored_image_gets_mirrored_defects(model, dev_samples):
    """The flip-averaged outputs of an image and of its mirror are mirrors of each other."""
    for sample in dev_samples[::PER_CLASS]:
        image = _grey(sample)
        plain, mirrored = model.inspect(image), model.inspect(np.ascontiguousarray(image[:, ::-1]))
        assert (mirrored.label, mirrored.score) == (plain.label, pytest.approx(plain.score, abs=1e-6))
        assert len(mirrored.defects) == len(plain.defects), sample.name
        for found, expected in zip(
            sorted(mirrored.defects, key=lambda d: (d.label, -d.score)), sorted(plain.defects, key=lambda d: (d.label, -d.score))
        ):
            x, y, w, h = expected.box
            assert found.label == expected.label and found.score == pytest.approx(expected.score, abs=1e-5)
            assert np.abs(np.subtract(found.box, (image.shape[1] - x - w, y, w, h))).max() <= 1, sample.name


def test_flip_off_runs_the_model_once(model, dev_samples, monkeypatch):
    calls = []
    run = model._run
    monkeypatch.setattr(model, "_run", lambda tensor: calls.append(tensor) or run(tensor))
    model.inspect(_grey(dev_samples[0]), flip=False)
    assert len(calls) == 1
    model.inspect(_grey(dev_samples[0]))
    assert len(calls) == 3 and np.array_equal(calls[2], calls[1][..., ::-1])


def test_decode_checks_the_output_shapes():
    with pytest.raises(ValueError, match="expected"):
        decode(np.ones(5), np.zeros((6, 5, 5)), np.zeros((4, 5, 5)), scale=(1, 1), image_size=(5, 5), min_score=0.3)


def test_the_split_is_stratified_fixed_and_disjoint():
    names = [f"{label}_{number}" for label in LABELS for number in range(1, 241)]
    splits = split_of_all(names)
    assert splits == split_of_all(list(reversed(names)))
    for label in LABELS:
        counts = {split: sum(1 for n, s in splits.items() if s == split and n.startswith(label + "_")) for split in SPLIT_FRACTIONS}
        assert counts == {"train": 168, "val": 36, "test": 36}


def test_the_samples_of_the_three_splits_are_disjoint_and_make_the_whole_set():
    """What training, validation and evaluation really read (``load_samples``): no image (by name
    or by file) in two splits, none left out, 168/36/36 of each class."""
    if not NEU_DET.is_dir():
        raise FileNotFoundError(f"{NEU_DET} is missing: the tests expect ../shared/data beside the repository")
    read = {split: load_samples(NEU_DET, split) for split in ("train", "val", "test")}
    names = {split: {sample.name for sample in samples} for split, samples in read.items()}
    files = {split: {sample.image_path.resolve() for sample in samples} for split, samples in read.items()}
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not names[first] & names[second], (first, second, sorted(names[first] & names[second])[:5])
        assert not files[first] & files[second], (first, second)
    assert names["train"] | names["val"] | names["test"] == {sample.name for sample in load_samples(NEU_DET, "all")}
    assert {split: len(samples) for split, samples in read.items()} == {"train": 168 * 6, "val": 36 * 6, "test": 36 * 6}
