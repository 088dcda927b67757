"""The pure parts of inspection and the data service: the annotated picture, the per-image
answer, the multipart batch, the query parameters, the per-day statistics, the analysis."""

import base64
import datetime as dt
import io

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from werkzeug.datastructures import FileStorage, MultiDict

from shared.defects.analysis import LOW_CONFIDENCE, analyse, defect_count_fence, trend_of
from shared.defects.annotate import LABEL_COLOURS, annotate, label_colour
from shared.defects.inbox import inbox_owner, output_key
from shared.defects.inspection import (
    DetectionFailure,
    ImageUpload,
    check_batch_pixels,
    detection_failure,
    detection_result,
    inspect_image,
    printable_name,
    refuse_if_none_inspected,
)
from shared.defects.inspection import (
    uploaded_images as inspection_uploads,
)
from shared.defects.model import Defect, Inspection
from shared.defects.narrative import chat_completions_url, with_narrative
from shared.defects.queries import DayStat, PageQuery, RecentQuery, RecordOut, SearchQuery, StatQuery, fill_days
from shared.defects.settings import DefectSettings
from shared.platform.errors import BadRequest, InspectionRefused, NotAnImage, PayloadTooLarge, UnsupportedMediaType
from tests.conftest import event_file


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


class RecordingModel:
    """A model that answers a fixed inspection and keeps what it was given."""

    def __init__(self, inspection: Inspection) -> None:
        self.inspection = inspection
        self.seen: list[np.ndarray] = []

    def inspect(self, image: np.ndarray) -> Inspection:
        self.seen.append(image)
        return self.inspection


TWO_DEFECTS = Inspection("scratches", 0.91, (Defect("scratches", 0.8, (10, 20, 30, 40)), Defect("inclusion", 0.4, (150, 150, 60, 60))))


# --- the annotated picture ----------------------------------------------------------------------


def test_annotate_frames_each_defect_in_its_labels_colour():
    grey = np.full((200, 200), 128, np.uint8)
    png = annotate(grey, TWO_DEFECTS.defects)
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert Image.open(io.BytesIO(png)).format == "PNG" and picture.shape == (200, 200, 3)
    assert tuple(picture[40, 10]) == LABEL_COLOURS["scratches"]  # left edge of the first box
    assert tuple(picture[59, 25]) == LABEL_COLOURS["scratches"]  # its bottom edge (y + h - 1)
    assert tuple(picture[199, 170]) == LABEL_COLOURS["inclusion"]  # the second, clipped at the picture's bottom
    assert tuple(picture[100, 100]) == (128, 128, 128)  # nothing drawn elsewhere


@pytest.mark.parametrize("box", [(-50, -50, 20, 20), (500, 500, 10, 10), (0, 0, 0, 0), (190, 5, 1000, 1)])
def test_boxes_outside_or_empty_are_clipped_not_fatal(box):
    rgb = np.zeros((30, 200, 3), np.uint8)
    png = annotate(rgb, [Defect("crazing", 0.5, box)], title="crazing 0.50")
    assert Image.open(io.BytesIO(png)).size == (200, 30)


@pytest.mark.parametrize("shape", [(1, 1), (1, 500), (500, 1)])
def test_annotate_tiny_pictures(shape):
    png = annotate(np.zeros(shape, np.uint8), [Defect("patches", 0.9, (0, 0, 5, 5))], title="patches 0.90")
    assert Image.open(io.BytesIO(png)).size == (shape[1], shape[0])


@pytest.mark.parametrize("array", [np.zeros((0, 5), np.uint8), np.zeros((5, 5), np.float32), np.zeros((5, 5, 4), np.uint8)])
def test_annotate_refuses_what_is_not_a_picture(array):
    with pytest.raises(ValueError, match="expected"):
        annotate(array, [])


@pytest.mark.parametrize("labels", [1, 20])  # a grey picture is drawn on a palette while the colours fit in it
def test_grey_pictures_keep_their_levels_and_every_colour(labels):
    grey = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    defects = [Defect(f"label{n}", 0.5, (2 + 5 * n, 60, 3, 3)) for n in range(labels)]
    picture = np.asarray(Image.open(io.BytesIO(annotate(grey, defects))).convert("RGB")).astype(int)
    assert np.abs(picture[30, 100:] - grey[30, 100:, None]).max() <= 1  # 240 grey levels: within one of 256
    for n, defect in enumerate(defects):
        assert tuple(picture[62, 2 + 5 * n]) == label_colour(defect.label)


def test_labels_of_other_models_get_a_stable_colour():
    assert label_colour("dent") == label_colour("dent") != label_colour("rust")


# --- one image ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "shape"),
    [
        ("L", (40, 60)),
        ("RGB", (40, 60, 3)),
        ("RGBA", (40, 60, 3)),
        ("CMYK", (40, 60, 3)),
        ("I;16", (40, 60)),
        ("P", (40, 60, 3)),
        ("1", (40, 60)),
    ],
)
def test_the_model_gets_grey_or_rgb_uint8(mode, shape):
    model = RecordingModel(TWO_DEFECTS)
    data = _png(Image.new("RGB", (60, 40), (10, 20, 30)).convert(mode)) if mode != "CMYK" else _jpeg_cmyk()
    inspected = inspect_image(model, data, "x.png", max_pixels=10_000)
    assert model.seen[0].shape == shape and model.seen[0].dtype == np.uint8
    assert (inspected.width, inspected.height) == (60, 40)


def _jpeg_cmyk() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (60, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", NotAnImage),
        (b"not an image at all", NotAnImage),
        (event_file("truncated.jpg"), NotAnImage),
        (b"P6\n2 2\n255\n" + bytes(12), UnsupportedMediaType),
    ],
)
def test_bad_files_raise_the_platforms_image_errors(data, error):
    with pytest.raises(error):
        inspect_image(RecordingModel(TWO_DEFECTS), data, "bad", max_pixels=10**7)


def test_pixels_are_bounded_before_the_model_runs():
    model = RecordingModel(TWO_DEFECTS)
    with pytest.raises(PayloadTooLarge, match="the limit is 100 pixels"):
        inspect_image(model, _png(Image.new("L", (20, 20))), "big.png", max_pixels=100)
    assert model.seen == []


def test_result_has_the_seeds_fields_and_ours():
    inspected = inspect_image(RecordingModel(TWO_DEFECTS), _png(Image.new("L", (200, 200))), "plate 7.png", max_pixels=10**6)
    result = detection_result(inspected, fig_id=42, result_key="outputs/defects/api/x.png").model_dump()
    assert set(result) >= {"defect_count", "dice", "labels", "name", "processing_time", "result_image"}
    assert result["name"] == "plate 7.png" and result["defect_count"] == 2 and result["labels"] == "scratches"
    assert result["dice"] == 0.91 and result["figId"] == 42 and 0 < result["processing_time"] < 60
    assert result["defects"] == [
        {"label": "scratches", "score": 0.8, "box": [10, 20, 30, 40]},
        {"label": "inclusion", "score": 0.4, "box": [150, 150, 60, 60]},
    ]
    assert Image.open(io.BytesIO(base64.b64decode(result["result_image"]))).size == (200, 200)


# --- the batch ------------------------------------------------------------------------------------


def _files(*parts: tuple[str, str, bytes]) -> MultiDict:
    return MultiDict([(field, FileStorage(io.BytesIO(data), filename=name)) for field, name, data in parts])


def uploaded_images(files: MultiDict, max_images: int) -> list:
    """What the function hands over of a request's ``files``."""
    return inspection_uploads(files.getlist("images"), max_images, list(files))


def test_images_in_order_with_the_seeds_default_name():
    uploads = uploaded_images(_files(("images", "a.png", b"1"), ("images", "", b"2"), ("images", "c.png", b"")), max_images=5)
    assert [(u.name, u.data) for u in uploads] == [("a.png", b"1"), ("uploaded_image.jpg", b"2"), ("c.png", b"")]


@pytest.mark.parametrize("files", [_files(), _files(("image", "a.png", b"1")), _files(("images", "", b""))])
def test_no_images_is_the_seeds_400(files):
    with pytest.raises(InspectionRefused) as refused:
        uploaded_images(files, max_images=5)
    assert refused.value.status == 400 and refused.value.body()["error"] == "No images provided"


class UnreadablePart:
    """A part whose headers were not UTF-8, as the HTTP layer hands it over (shared.platform.http.FilePart)."""

    filename = "b\ufffd.png"
    unreadable = "not UTF-8"

    def read(self) -> bytes:
        raise AssertionError("an unreadable part is not read")


def test_a_part_with_an_unreadable_name_is_an_upload_refused_on_its_own():
    good = _files(("images", "a.png", b"1")).getlist("images")
    uploads = inspection_uploads([good[0], UnreadablePart()], 5)
    assert [(u.name, u.data, u.refused) for u in uploads] == [("a.png", b"1", None), ("b\ufffd.png", b"", "not UTF-8")]


def test_too_many_images_is_413_before_any_is_read():
    with pytest.raises(PayloadTooLarge, match="6 images in one request; the limit is 5"):
        uploaded_images(_files(*[("images", f"{n}.png", b"x") for n in range(6)]), max_images=5)


def test_the_batch_pixel_budget_is_read_from_the_headers():
    uploads = [
        ImageUpload("a.png", _png(Image.new("L", (100, 50)))),
        ImageUpload("b.txt", b"not an image"),
        ImageUpload("c.png", _png(Image.new("RGB", (10, 10)))),
    ]
    check_batch_pixels(uploads, max_pixels=5100, max_image_pixels=10**6)
    with pytest.raises(PayloadTooLarge, match="the 3 images hold 5100 pixels in all; the limit is 5099"):
        check_batch_pixels(uploads, max_pixels=5099, max_image_pixels=10**6)
    check_batch_pixels(uploads, max_pixels=100, max_image_pixels=100)  # the large one is refused on its own


def test_names_lose_control_characters():
    assert printable_name("a\x00b\n.png") == "ab.png"
    assert printable_name("\x00") == printable_name(None) == "uploaded_image.jpg"


def test_a_batch_with_no_usable_image_is_refused_with_every_failure():
    failures = [detection_failure("a.txt", 400, "not an image"), detection_failure("b.png", 413, "too large")]
    with pytest.raises(InspectionRefused) as refused:
        refuse_if_none_inspected(failures)
    body = refused.value.body()
    assert refused.value.status == 400
    assert body["error"] == body["detail"] == "Invalid image data for a.txt" and body["details"] == "not an image"
    assert [entry["name"] for entry in body["results"]] == ["a.txt", "b.png"]
    refuse_if_none_inspected([])  # nothing to refuse


def test_the_first_failures_status_decides():
    with pytest.raises(InspectionRefused) as refused:
        refuse_if_none_inspected([DetectionFailure(name="big.png", error="Invalid image data for big.png", details="d", status=413)])
    assert refused.value.status == 413


# --- the inbox ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "owner"),
    [
        ("inbox/defects/plate.jpg", "local"),
        ("inbox/defects/alice/plate.jpg", "alice"),
        ("inbox/defects/alice/line 2/p.jpg", "alice"),
    ],
)
def test_inbox_owner(key, owner):
    assert inbox_owner(key, "local") == owner


@pytest.mark.parametrize("key", ["inbox/defects//plate.jpg", f"inbox/defects/{'o' * 65}/plate.jpg", "inbox/defects/a\x01b/p.jpg"])
def test_inbox_owner_segment_must_be_an_owner(key):
    with pytest.raises(BadRequest, match="owner segment"):
        inbox_owner(key, "local")


def test_output_key():
    assert output_key("inbox/defects/alice/p.jpg") == "outputs/defects/alice/p.jpg.png"
    with pytest.raises(BadRequest, match="longer than 1024 bytes"):
        output_key("inbox/defects/" + "é" * 505)  # a 1024-byte key: S3 takes it


# --- query parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "params", "expected"),
    [
        (RecentQuery, {}, {"limit": 120}),
        (RecentQuery, {"limit": "1000", "other": "ignored"}, {"limit": 1000}),
        (RecentQuery, {"limit": ""}, {"limit": 120}),
        (PageQuery, {}, {"limit": 20, "page": 1}),
        (
            SearchQuery,
            {"name": "50%_x", "num": "0", "startDate": "2024-02-01", "endDate": "2024-02-01"},
            {"name": "50%_x", "num": 0, "start_date": dt.date(2024, 2, 1), "end_date": dt.date(2024, 2, 1)},
        ),
        (SearchQuery, {"name": "", "num": "", "startDate": "", "endDate": ""}, {"name": None, "num": None, "start_date": None}),
    ],
)
def test_valid_queries(model, params, expected):
    parsed = model.model_validate(params)
    assert {key: getattr(parsed, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("model", "params", "loc", "kind"),
    [
        (RecentQuery, {"limit": "0"}, ("limit",), "greater_than_equal"),
        (RecentQuery, {"limit": "1001"}, ("limit",), "less_than_equal"),
        (RecentQuery, {"limit": "ten"}, ("limit",), "int_parsing"),
        (RecentQuery, {"limit": "99999999999999999999999"}, ("limit",), "less_than_equal"),
        (PageQuery, {"page": "0"}, ("page",), "greater_than_equal"),
        (PageQuery, {"page": "1000001"}, ("page",), "less_than_equal"),
        (PageQuery, {"page": "1.5"}, ("page",), "int_parsing"),
        (SearchQuery, {"num": "-1"}, ("num",), "greater_than_equal"),
        (SearchQuery, {"startDate": "2024-13-01"}, ("startDate",), "date_from_datetime_parsing"),
        (SearchQuery, {"startDate": "yesterday"}, ("startDate",), "date_from_datetime_parsing"),
        (SearchQuery, {"startDate": "0001-01-01"}, ("startDate",), "greater_than_equal"),
        (SearchQuery, {"endDate": "9999-12-31"}, ("endDate",), "less_than_equal"),
        (SearchQuery, {"startDate": "2024-02-02", "endDate": "2024-02-01"}, ("endDate",), "value_error"),
        (SearchQuery, {"name": "x" * 256}, ("name",), "string_too_long"),
        (SearchQuery, {"name": "a\x00b"}, ("name",), "string_pattern_mismatch"),
        (StatQuery, {"startDate": "2024-01-01", "endDate": "2025-01-01"}, ("endDate",), "value_error"),
        (StatQuery, {"startDate": "2024-01-02", "endDate": "2024-01-01"}, ("endDate",), "value_error"),
    ],
)
def test_invalid_queries_name_the_parameter(model, params, loc, kind):
    with pytest.raises(ValidationError) as error:
        model.model_validate(params)
    (problem,) = error.value.errors()
    assert (problem["loc"], problem["type"]) == (loc, kind)


TODAY = dt.date(2024, 3, 10)


@pytest.mark.parametrize(
    ("params", "window"),
    [
        ({}, (dt.date(2024, 2, 25), TODAY)),
        ({"startDate": "2024-01-01"}, (dt.date(2024, 1, 1), dt.date(2024, 1, 15))),
        ({"endDate": "2024-01-15"}, (dt.date(2024, 1, 1), dt.date(2024, 1, 15))),
        ({"startDate": "2024-01-01", "endDate": "2024-12-31"}, (dt.date(2024, 1, 1), dt.date(2024, 12, 31))),
        ({"startDate": "2024-01-01", "endDate": "2024-01-01"}, (dt.date(2024, 1, 1), dt.date(2024, 1, 1))),
        ({"endDate": "1970-01-03"}, (dt.date(1970, 1, 1), dt.date(1970, 1, 3))),
        ({"startDate": "9999-12-20"}, (dt.date(9999, 12, 20), dt.date(9999, 12, 30))),  # no overflow past year 9999
        ({"startDate": "9999-12-30"}, (dt.date(9999, 12, 30), dt.date(9999, 12, 30))),
    ],
)
def test_stat_window(params, window):
    assert StatQuery.model_validate(params).window(TODAY) == window


def test_fill_days_lists_every_day_with_zeros():
    rows = fill_days(dt.date(2024, 2, 27), dt.date(2024, 3, 2), {dt.date(2024, 2, 28): (3, 7), dt.date(2024, 3, 2): (1, 0)})
    assert rows == [
        DayStat(record_count=0, stat_date="2024-02-27", total_num=0),
        DayStat(record_count=3, stat_date="2024-02-28", total_num=7),
        DayStat(record_count=0, stat_date="2024-02-29", total_num=0),
        DayStat(record_count=0, stat_date="2024-03-01", total_num=0),
        DayStat(record_count=1, stat_date="2024-03-02", total_num=0),
    ]
    assert fill_days(dt.date(2024, 1, 1), dt.date(2024, 1, 1), {}) == [DayStat(record_count=0, stat_date="2024-01-01", total_num=0)]


# --- analysis -------------------------------------------------------------------------------------


def _record(fig_id: int, day: str, num: int, label: str = "crazing", dice: float = 0.9) -> RecordOut:
    return RecordOut(figId=fig_id, name=f"{fig_id}.jpg", resFig=None, date=day, time="12:00:00", label=label, num=num, dice=dice)


def test_analysis_of_nothing():
    analysis = analyse([])
    assert analysis.records == 0 and analysis.summary == "No inspection records yet." and analysis.trend.direction == "unknown"


def test_analysis_counts_rates_and_days():
    records = [
        _record(1, "2024-03-01", 2),
        _record(2, "2024-03-01", 0, "patches"),
        _record(3, "2024-03-03", 1),
        _record(4, "2024-03-03", 3, dice=0.3),
    ]
    analysis = analyse(records)
    assert (analysis.records, analysis.defects, analysis.defect_rate, analysis.defects_per_record) == (4, 6, 0.75, 1.5)
    assert analysis.mean_dice == pytest.approx((0.9 * 3 + 0.3) / 4, abs=1e-4)
    assert [(c.label, c.records, c.share, c.defects) for c in analysis.by_label] == [("crazing", 3, 0.75, 6), ("patches", 1, 0.25, 0)]
    assert [(d.date, d.records, d.defects, d.defects_per_record) for d in analysis.daily] == [
        ("2024-03-01", 2, 2, 1.0),
        ("2024-03-02", 0, 0, None),
        ("2024-03-03", 2, 4, 2.0),
    ]
    assert analysis.trend.direction == "rising" and analysis.trend.slope == pytest.approx(0.5)
    assert (analysis.first, analysis.last) == ("2024-03-01 12:00:00", "2024-03-03 12:00:00")
    (outlier,) = analysis.outliers
    assert outlier.figId == 4 and outlier.reasons == [f"class confidence 0.30, below {LOW_CONFIDENCE:g}"]
    assert "4 records" in analysis.summary and "crazing" in analysis.summary and "rising" in analysis.summary


def test_outliers_above_tukeys_fence_most_defects_first():
    records = [_record(n, "2024-03-01", 1) for n in range(1, 20)] + [_record(20, "2024-03-01", 9), _record(21, "2024-03-01", 4)]
    analysis = analyse(records)
    assert analysis.defect_count_fence == defect_count_fence(np.array([r.num for r in records], float)) == 2.5  # Q3 1 + 1.5 x 1
    assert [(o.figId, o.num) for o in analysis.outliers] == [(20, 9), (21, 4)]


@pytest.mark.parametrize(
    ("per_day", "direction"), [([1, 1, 1, 1], "flat"), ([3, 2, 1, 0], "falling"), ([0, 1, 2, 3], "rising"), ([2], "unknown")]
)
def test_trend(per_day, direction):
    records = [_record(n, f"2024-03-0{n + 1}", num) for n, num in enumerate(per_day)]
    assert trend_of(analyse(records).daily).direction == direction


def test_no_narrative_without_a_configured_model():
    analysis = analyse([_record(1, "2024-03-01", 1)])
    assert with_narrative(analysis, DefectSettings(analysis_llm_url="http://127.0.0.1:9/v1")) == analysis  # no model name
    assert with_narrative(analysis, DefectSettings()) == analysis


def test_chat_completions_url():
    assert chat_completions_url("https://llm.example/v1/") == "https://llm.example/v1/chat/completions"
    assert chat_completions_url("https://llm.example/v1/chat/completions") == "https://llm.example/v1/chat/completions"
