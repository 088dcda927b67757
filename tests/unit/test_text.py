"""The text stage's pure parts (digit-run rule, hide list, quadrilaterals, masks, DB's post-processing,
hiding) and the real models on drawn text. Expected values are worked out by hand in each test."""

import time

import numpy as np
import pytest
from pydantic import ValidationError

from shared.faces.anonymize import AnonymizeStyle
from shared.faces.hide import parse_hide
from shared.faces.privacy import FaceOptions, FacePrivacy, FaceReport, FaceTextReport
from shared.faces.settings import FaceSettings, get_face_settings
from shared.faces.text import (
    TextRegions,
    grown_quads,
    hide_text,
    holds_digit_run,
    ordered_quad,
    quads_mask,
    quads_to_boxes,
    regions_from_probabilities,
    text_blob,
    text_input_size,
)
from tests.text_images import CARD_NUMBER, SHOP_WORD, encoded, plate, street_scene


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234", True),
        ("12 34", True),
        ("1.2-3 4", True),
        ("4111 1111 1111 1111", True),
        ("+33 6 12 34 56 78", True),
        ("(555) 123-4567", True),  # 123-4567: seven digits with a dash
        ("B MW 1234", True),
        ("ID 8842-7731", True),
        ("\uff11\uff12\uff13\uff14", True),  # full-width digits
        ("12\u201434", True),  # an em dash between
        ("123", False),
        ("AB-123-CD", False),  # a French plate: three digits only
        ("AB12 CDE", False),
        ("12a34", False),  # a letter breaks the run
        ("12/34", False),  # a slash is not a separator
        ("12:34", False),
        ("\u2460\u2461\u2462\u2463", False),  # circled digits are not digits
        ("", False),
        ("Boulangerie", False),
    ],
)
def test_digit_run_rule(text, expected):
    assert holds_digit_run(text) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {"faces"}),
        ("text", {"text"}),
        (" Faces , NUMBERS ", {"faces", "numbers"}),
        ("faces,text,numbers,text", {"faces", "text", "numbers"}),
        (["numbers"], {"numbers"}),
    ],
)
def test_hide_list(value, expected):
    assert parse_hide(value) == expected


@pytest.mark.parametrize("value", ["", " , ", "cars", "faces,plates", "faces;text"])
def test_hide_list_refuses_unknown_names(value):
    with pytest.raises(ValueError, match="comma list of faces, text, numbers"):
        parse_hide(value)


def test_hide_option_is_normalised_and_validated():
    assert FaceOptions.model_validate({"hide": "numbers, FACES"}).hide == "faces,numbers"
    assert FaceOptions().hide is None and FaceOptions().targets == {"faces"}
    with pytest.raises(ValidationError):
        FaceOptions.model_validate({"hide": "licence"})


def test_a_task_keeps_hide_only_when_given():
    assert "hide" not in FaceOptions().params()
    assert FaceOptions(hide="text").params()["hide"] == "text"


def test_inbox_setting_is_validated():
    assert FaceSettings(face_inbox_hide="Numbers,faces").face_inbox_hide == "faces,numbers"
    assert FaceSettings(face_inbox_hide="Numbers,faces").inbox_hide_option == "faces,numbers"
    assert FaceSettings(face_inbox_hide="faces").inbox_hide_option is None  # faces alone: answers as without hide
    with pytest.raises(ValidationError):
        FaceSettings(face_inbox_hide="everything")


def test_ordered_quad_from_any_order():
    # a rectangle tilted a little: tl (10, 12), tr (50, 10), br (51, 30), bl (11, 32)
    shuffled = np.array([[51, 30], [10, 12], [11, 32], [50, 10]], np.float32)
    assert ordered_quad(shuffled).tolist() == [[10, 12], [50, 10], [51, 30], [11, 32]]


def test_quadrilateral_to_box():
    quads = np.array([[[10, 12], [50, 10], [51, 30], [11, 32]], [[0, 0], [4, 0], [4, 2], [0, 2]]], np.float32)
    assert quads_to_boxes(quads).tolist() == [[10, 10, 41, 22], [0, 0, 4, 2]]
    assert quads_to_boxes(np.zeros((0, 4, 2))).shape == (0, 4)


def test_grown_quad_pushes_each_side_by_margin_times_text_height():
    # 100 x 20 upright line, margin 0.5: every side 10 px out (half the height, not of the length)
    quad = np.array([[[100, 50], [200, 50], [200, 70], [100, 70]]], np.float32)
    assert grown_quads(quad, 0.5).round(3).tolist() == [[[90, 40], [210, 40], [210, 80], [90, 80]]]
    assert grown_quads(quad, 0.0).tolist() == quad.tolist()


def test_quads_mask_fills_the_polygon_and_clips():
    mask = quads_mask(np.array([[[2, 3], [6, 3], [6, 5], [2, 5]]], np.float32), 10, 8)
    expected = np.zeros((8, 10), bool)
    expected[3:6, 2:7] = True  # the corners are pixels too: x 2..6, y 3..5
    assert (mask == expected).all()
    outside = quads_mask(np.array([[[-20, -20], [30, -20], [30, 30], [-20, 30]]], np.float32), 10, 8)
    assert outside.all()
    assert not quads_mask(np.zeros((0, 4, 2), np.float32), 10, 8).any()


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080, 1280, 640), (1280, 704)),  # 2/3: 1280 x 720; 720 / 32 = 22.5, half to even: 22 x 32
        ((320, 240, 1280, 640), (864, 640)),  # enlarged by 640/240: 853.3 -> 27 x 32
        ((100, 10000, 1280, 640), (32, 1280)),  # never past the longer side's limit
        ((1280, 720, 1280, 640), (1280, 704)),
    ],
)
def test_text_input_size(size, expected):
    assert text_input_size(*size) == expected


def test_db_post_processing_finds_a_line_and_unclips_it():
    probability = np.zeros((60, 120), np.float32)
    probability[10:20, 20:80] = 0.9  # one line, 60 x 10 px
    quads, scores = regions_from_probabilities(probability, 0.3, 0.5, 1.6, 100)
    assert len(quads) == 1 and scores[0] > 0.5
    # the 2x2 dilation adds one column and one row: 61 x 11 px, centre (50, 15); DB's unclip pushes
    # each side out by area x 1.6 / perimeter = 671 x 1.6 / 144 = 7.456 px
    x, y, w, h = quads_to_boxes(quads)[0]
    assert (x, y, w, h) == pytest.approx((50 - 30.5 - 7.456, 15 - 5.5 - 7.456, 61 + 14.911, 11 + 14.911), abs=0.6)


def test_db_post_processing_drops_faint_and_thin_regions():
    probability = np.zeros((60, 120), np.float32)
    probability[10:20, 20:80] = 0.4  # above the pixel threshold, under the region score
    probability[40, 10:110] = 0.9  # one pixel high (two with the dilation): under 3 px
    quads, _ = regions_from_probabilities(probability, 0.3, 0.5, 1.6, 100)
    assert len(quads) == 0


def test_thousands_of_specks_are_bounded():
    """GIVEN a map of 10,000 specks and one line WHEN post-processed with a cap of 50 THEN 50
    regions at most come back, the line among them (the largest first), quickly."""
    probability = np.zeros((1000, 1000), np.float32)
    probability[2:1000:10, 2:1000:10] = 0.9
    probability[3:1000:10, 2:1000:10] = 0.9
    probability[2:1000:10, 3:1000:10] = 0.9  # 3 px specks, 3 x 3 once dilated
    probability[500:520, 100:600] = 0.95
    started = time.perf_counter()
    quads, _ = regions_from_probabilities(probability, 0.3, 0.5, 1.6, 50)
    assert time.perf_counter() - started < 5
    assert len(quads) <= 50
    widths = quads_to_boxes(quads)[:, 2]
    assert widths.max() > 500


def test_hide_text_replaces_the_grown_quad_only():
    image = np.full((40, 60, 3), 255, np.uint8)
    regions = TextRegions(np.array([[[10, 10], [40, 10], [40, 20], [10, 20]]], np.float32), np.array([0.9], np.float32), np.array([True]))
    strengths = hide_text(image, regions, AnonymizeStyle(mode="solid", margin=0.2))
    assert strengths == [0]
    expected = np.full((40, 60), 255, np.uint8)
    expected[8:23, 8:43] = 0  # 2 px out on each side (0.2 x the 10 px height), corners included
    assert (image[:, :, 0] == expected).all()


def test_text_regions_validate_their_shapes():
    with pytest.raises(ValueError, match=r"\(N, 4, 2\)"):
        TextRegions(np.zeros((2, 4), np.float32), np.zeros(2, np.float32), np.zeros(2, bool))
    with pytest.raises(ValueError, match="scores and numbers"):
        TextRegions(np.zeros((2, 4, 2), np.float32), np.zeros(3, np.float32), np.zeros(2, bool))
    assert len(TextRegions.empty()) == 0 and TextRegions.empty().detections.boxes.shape == (0, 4)


@pytest.fixture(scope="module")
def privacy() -> FacePrivacy:
    return FacePrivacy(get_face_settings())


def test_the_recogniser_tells_a_number_from_a_word(privacy):
    stage = privacy.text_stage()
    for text, expected in ((CARD_NUMBER, True), (SHOP_WORD, False), ("+33 6 12 34 56 78", True), ("AB-123-CD", False)):
        sign = np.asarray(plate(text, 32))
        height, width = sign.shape[:2]
        quad = np.array([[[0, 0], [width, 0], [width, height], [0, height]]], np.float32)
        assert stage.recognizer.holds_numbers(sign, quad).tolist() == [expected], text


def _float_probabilities(privacy, scene: np.ndarray, model_file) -> np.ndarray:
    """A detector file's text probabilities for ``scene`` in float32 on onnxruntime, at the shipped detector's input size."""
    from shared.faces.detectors import onnx_session

    detector = privacy.text_stage().detector
    height, width = scene.shape[:2]
    blob = text_blob(scene, text_input_size(width, height, detector.max_input_side, detector.min_input_side))
    return onnx_session(model_file).run(None, {"x": blob})[0][0, 0]


def test_the_simplified_detector_computes_what_the_fetched_one_computes(privacy):
    """The shipped detector (tools/faces/simplify_text.py: affine blocks folded, HardSwish fused)
    against the float file it was made from, on a drawn street scene, both in float32."""
    from shared.faces.models import PPOCR_TEXT_DETECTION, PPOCR_TEXT_DETECTION_SIMPLIFIED

    scene = np.asarray(street_scene()[0])
    assert privacy.text_stage().detector.model_name == "ch_PP-OCRv4_det_simplified"
    expected = _float_probabilities(privacy, scene, privacy.settings.model_dir / PPOCR_TEXT_DETECTION.filename)
    found = _float_probabilities(privacy, scene, privacy.model_paths[PPOCR_TEXT_DETECTION_SIMPLIFIED.name])
    assert found.shape == expected.shape and (expected > 0.5).sum() > 100  # the scene's text
    assert np.abs(found - expected).max() < 1e-4


def test_the_detector_on_openvino_finds_what_it_finds_in_float(privacy):
    """OpenVINO computes in bfloat16 on a CPU that has it: the probabilities move a little at the
    regions' edges, the regions stay."""
    from shared.faces.models import PPOCR_TEXT_DETECTION_SIMPLIFIED

    scene = np.asarray(street_scene()[0])
    detector = privacy.text_stage().detector
    expected = _float_probabilities(privacy, scene, privacy.model_paths[PPOCR_TEXT_DETECTION_SIMPLIFIED.name])
    found = detector.probabilities(scene)
    assert found.shape == expected.shape
    assert np.mean(np.abs(found - expected) > 0.05) < 0.005  # a few edge pixels at most
    in_float = regions_from_probabilities(expected, detector.pixel_threshold, detector.min_score, detector.unclip_ratio, 100)[0]
    found_regions = regions_from_probabilities(found, detector.pixel_threshold, detector.min_score, detector.unclip_ratio, 100)[0]
    assert len(found_regions) == len(in_float) >= 2
    for quad in in_float:  # each float region has one found within a pixel or two
        assert min(np.abs(other - quad).max() for other in found_regions) < 3


def test_hide_numbers_keeps_the_shop_word(privacy):
    scene, boxes = street_scene()
    text = privacy.detect(encoded(scene), FaceOptions(hide="text"))
    numbers = privacy.detect(encoded(scene), FaceOptions(hide="numbers"))
    assert isinstance(text, FaceTextReport) and isinstance(numbers, FaceTextReport)
    assert text.text_count == 2 and {region.kind for region in text.text} == {"text"}
    assert [region.kind for region in numbers.text] == ["number"]
    x, y, w, h = numbers.text[0].bbox
    px, py, pw, ph = boxes[CARD_NUMBER]
    assert px <= x and py <= y and x + w <= px + pw and y + h <= py + ph  # inside the card's plate


def test_without_hide_the_report_has_no_text(privacy):
    scene, _ = street_scene()
    report = privacy.detect(encoded(scene), FaceOptions())
    assert type(report) is FaceReport
    assert set(report.model_dump()) == {"faces", "total_count", "processing_time_ms", "detector", "model", "width", "height"}


def test_recognition_is_capped_and_the_unread_are_hidden(privacy):
    """Past max_recognized, regions are not read but hidden all the same (kind number)."""
    scene, _ = street_scene()
    rgb = np.asarray(scene)
    stage = privacy.text_stage()
    saved = stage.max_recognized
    stage.max_recognized = 1
    try:
        regions = stage.find(rgb, frozenset({"numbers"}))
    finally:
        stage.max_recognized = saved
    assert len(regions) == 2  # the card (read: a number) and the word (unread: hidden)


def test_video_frames_hide_text_and_track_it(privacy):
    """GIVEN frames with the card number, then one without it WHEN worked with hide=numbers THEN
    the card is hidden in each, and in the frame that lost it the track still covers it."""
    from shared.faces.video import FrameAnonymizer

    scene, boxes = street_scene()
    with_text = np.asarray(scene)
    x, y, w, h = boxes[CARD_NUMBER]
    without = with_text.copy()
    without[y : y + h, x : x + w] = 120  # the plate gone: plain grey where it was
    work = FrameAnonymizer(
        privacy.detector(None), AnonymizeStyle(mode="solid"), track_frames=2, text_stage=privacy.text_stage(), hide=frozenset({"numbers"})
    )
    outputs = [work(frame)[0] for frame in (with_text, with_text, without)]
    for output in outputs:
        assert (output[y + 10 : y + h - 10, x + 20 : x + w - 20] == 0).mean() > 0.9  # solid over the card
    assert work.text_detected == [1, 1, 0] and work.text_covered == [1, 1, 1]
    sx, sy, sw, sh = boxes[SHOP_WORD]
    assert (outputs[0][sy : sy + sh, sx : sx + sw] == with_text[sy : sy + sh, sx : sx + sw]).all()


def test_the_detector_serves_threads_at_once(privacy):
    """A function serves requests from several threads: each has its own inference request."""
    import threading

    scene = np.asarray(street_scene()[0])
    detector = privacy.text_stage().detector
    expected = detector.probabilities(scene)
    answers: list[bool] = []

    def work() -> None:
        for _ in range(4):
            answers.append(np.array_equal(detector.probabilities(scene), expected))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [True] * 16
