"""Text and number hiding benchmark (issue 26): coverage on a synthetic set, time beside deface's.

    make bench        (or: .venv/bin/python -m tests.bench.bench_text [--photos 24] [--runs 10] [--seed 26])

No labelled plate or ID data can be fetched here, so the set is made, reproducibly (``--seed``):
strings of several kinds (plates of a few countries, ID and card numbers, phone numbers, plain
words) rendered on the dev photos (``../shared/data/faces/wider_subset``) in DejaVu fonts
(matplotlib's), 12-44 px high, random colours, on a plate or straight on the photo, rotated up
to 8 degrees, a slight perspective, a blur and JPEG noise. The ground truth of each string is
its quadrilateral (its tight box, transformed with it) and whether it holds a run of >= 4 digits
(known from how it was made, not read by the code under test).

The photos are split (``photo_parts``): the bench's figures come from the ``evaluation`` part
(every third photo, 24); settings are chosen on the ``dev`` part (``--part dev``), and a
quantizer calibrates on the ``calibration`` part; no photo is in two parts.

Prints, in one run:
- ``text``: strings covered (>= 70% of the quadrilateral hidden), overall, for strings >= 16 px
  high, and by height, angle, contrast (on a plate or on the photo) and blur;
- ``numbers``: digit strings covered, and plain words hidden (>= 70%), plates with fewer than 4
  digits apart (the rule leaves them);
- regions hidden that touch no rendered string (the photos hold real text too: banners, shirts);
- the time of faces + text (and faces + numbers) at 1080p beside deface's faces alone, and our
  faces alone, the contenders taking turns (median of ``--runs``).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shared.faces.anonymize import AnonymizeStyle, anonymize
from shared.faces.privacy import FacePrivacy
from shared.faces.settings import get_face_settings
from shared.faces.text import TextRegions, grown_quads, hide_text, quads_mask
from tests.bench.bench_face import WIDER, DefaceReference, load_rgb

FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf")
STYLE = AnonymizeStyle(mode="blur", shape="rectangle", margin=0.3)
COVERED = 0.7  # fraction of a string's quadrilateral hidden for it to count as covered


@dataclass(frozen=True)
class Rendered:
    kind: str  # plate, plate_short, id, card, phone, word
    digit_run: bool  # holds >= 4 digits in a run (spaces, dots, dashes between): known by construction
    quad: np.ndarray  # (4, 2) in the photo's pixels
    height: int  # the text's height before rotation, px
    angle: float
    on_plate: bool
    blur: float


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _letters(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(count))


def make_string(rng: random.Random) -> tuple[str, str, bool]:
    """(text, kind, digit_run). Plates with fewer than 4 digits are ``plate_short`` (no run)."""
    choice = rng.choice(["plate", "plate", "id", "card", "phone", "word", "word", "word"])
    if choice == "plate":
        text, digits = rng.choice(
            [
                (f"{_letters(rng, 2)}-{_digits(rng, 3)}-{_letters(rng, 2)}", 3),  # France
                (f"{_letters(rng, 1)} {_letters(rng, 2)} {_digits(rng, 4)}", 4),  # Germany
                (f"{_letters(rng, 2)}{_digits(rng, 2)} {_letters(rng, 3)}", 2),  # United Kingdom
                (f"{_digits(rng, 1)}{_letters(rng, 3)}{_digits(rng, 3)}", 1),  # California
                (f"{_digits(rng, 4)} {_letters(rng, 3)}", 4),  # Spain
                (f"{_letters(rng, 2)} {_digits(rng, 3)}{_letters(rng, 2)}", 3),  # Italy
            ]
        )
        return text, "plate" if digits >= 4 else "plate_short", digits >= 4
    if choice == "id":
        return (
            rng.choice([f"ID {_digits(rng, 4)}-{_digits(rng, 4)}", f"No. {_digits(rng, 9)}", f"{_letters(rng, 2)} {_digits(rng, 6)}"]),
            "id",
            True,
        )
    if choice == "card":
        return " ".join(_digits(rng, 4) for _ in range(4)), "card", True
    if choice == "phone":
        return (
            rng.choice(
                [
                    f"+33 6 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
                    f"({_digits(rng, 3)}) {_digits(rng, 3)}-{_digits(rng, 4)}",
                    f"0{_digits(rng, 2)}.{_digits(rng, 3)}.{_digits(rng, 4)}",
                ]
            ),
            "phone",
            True,
        )
    words = [
        "Boulangerie",
        "Rue de la Paix",
        "Pharmacie",
        "OPEN",
        "Main Street",
        "Hotel Central",
        "Bahnhofstrasse",
        "Cafe",
        "EXIT",
        "Museum",
    ]
    return rng.choice(words), "word", False


def _contrasting(rng: random.Random, background: tuple[int, int, int]) -> tuple[int, int, int]:
    for _ in range(20):
        colour = tuple(rng.randrange(256) for _ in range(3))
        if abs(sum(colour) - sum(background)) > 300:
            return colour  # type: ignore[return-value]
    return (0, 0, 0) if sum(background) > 384 else (255, 255, 255)


def render_string(rng: random.Random, photo: np.ndarray, taken: np.ndarray) -> tuple[np.ndarray, Rendered] | None:
    """One string rendered onto ``photo`` (in place) where ``taken`` is free; None when it found no room."""
    text, kind, digit_run = make_string(rng)
    height_px = rng.choice([12, 14, 16, 18, 20, 24, 28, 32, 36, 44])  # the ink's height
    font_file, size = str(FONTS / rng.choice(FONT_FILES)), height_px
    font = ImageFont.truetype(font_file, size)
    while font.getbbox(text)[3] - font.getbbox(text)[1] < height_px:
        size += 1
        font = ImageFont.truetype(font_file, size)
    left, top, right, bottom = font.getbbox(text)
    text_w, text_h = right - left, bottom - top
    pad = max(3, height_px // 4)
    on_plate = rng.random() < 0.7
    patch_w, patch_h = text_w + 2 * pad, text_h + 2 * pad
    height, width = photo.shape[:2]
    if patch_w + 20 >= width or patch_h + 20 >= height:
        return None
    angle = rng.uniform(-8, 8)
    for _ in range(30):
        x0, y0 = rng.randrange(10, width - patch_w - 10), rng.randrange(10, height - patch_h - 10)
        if not taken[max(0, y0 - 10) : y0 + patch_h + 10, max(0, x0 - 10) : x0 + patch_w + 10].any():
            break
    else:
        return None
    region = photo[y0 : y0 + patch_h, x0 : x0 + patch_w]
    mean_colour = tuple(int(v) for v in region.reshape(-1, 3).mean(axis=0))
    background = tuple(rng.randrange(256) for _ in range(3)) if on_plate else mean_colour
    colour = _contrasting(rng, background)  # type: ignore[arg-type]
    # the patch: its plate (alpha 255) or nothing, and the text
    layer = Image.new("RGBA", (patch_w, patch_h), (*background, 255 if on_plate else 0))
    ImageDraw.Draw(layer).text((pad - left, pad - top), text, font=font, fill=(*colour, 255))
    tight = np.array([[pad, pad], [pad + text_w, pad], [pad + text_w, pad + text_h], [pad, pad + text_h]], np.float32)
    # rotation about the centre and a slight perspective, as one homography
    centre = np.array([patch_w / 2, patch_h / 2], np.float32)
    rotation = cv2.getRotationMatrix2D(tuple(centre), angle, 1.0)
    corners = np.array([[0, 0], [patch_w, 0], [patch_w, patch_h], [0, patch_h]], np.float32)
    rotated = cv2.transform(corners[None], rotation)[0]
    jitter = np.array([[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in range(4)], np.float32) * 0.04 * patch_h
    homography = cv2.getPerspectiveTransform(corners, rotated + jitter)
    quad_local = cv2.perspectiveTransform(tight[None], homography)[0]
    low = np.floor(cv2.perspectiveTransform(corners[None], homography)[0].min(axis=0)).astype(int)
    shift = np.array([[1, 0, -low[0]], [0, 1, -low[1]], [0, 0, 1]], np.float64)
    out_w, out_h = patch_w * 2, patch_h * 2 + patch_w // 4
    warped = cv2.warpPerspective(np.asarray(layer), shift @ homography, (out_w, out_h), flags=cv2.INTER_LINEAR)
    ox, oy = x0 + low[0], y0 + low[1]
    sx, sy = max(0, -ox), max(0, -oy)
    ex, ey = min(out_w, width - ox), min(out_h, height - oy)
    alpha = warped[sy:ey, sx:ex, 3:4].astype(np.float32) / 255
    target = photo[oy + sy : oy + ey, ox + sx : ox + ex]
    target[:] = (target * (1 - alpha) + warped[sy:ey, sx:ex, :3] * alpha).astype(np.uint8)
    blur = rng.choice([0.0, 0.0, 0.6, 1.0])
    if blur:
        target[:] = cv2.GaussianBlur(target, (0, 0), blur)
    taken[oy + sy : oy + ey, ox + sx : ox + ex] |= alpha[:, :, 0] > 0
    quad = quad_local + np.array([x0, y0], np.float32)
    return photo, Rendered(kind, digit_run, quad, text_h, angle, on_plate, blur)


PARTS = ("evaluation", "calibration", "dev")


def photo_parts(photos: int = 24) -> dict[str, list[str]]:
    """The dev photos (sorted by path) in three parts that share no photo: ``evaluation``, every
    n-th one (``photos`` of them: the bench's figures); of the others, alternately, ``calibration``
    (for a quantizer: ``tools/faces/simplify_text.py --int8``) and ``dev`` (where the text
    settings are chosen: ``--part dev``, several ``--seed``s for more strings)."""
    files = sorted(item["file"] for item in json.loads((WIDER / "ground_truth.json").read_text()))
    evaluation = files[:: max(1, len(files) // photos)][:photos]
    rest = [name for name in files if name not in set(evaluation)]
    return {"evaluation": evaluation, "calibration": rest[0::2], "dev": rest[1::2]}


def make_set(seed: int, photos: int, part: str = "evaluation") -> list[tuple[np.ndarray, list[Rendered]]]:
    """The photos of that part (``photo_parts(photos)``), each with up to 6 strings, JPEG-compressed."""
    rng = random.Random(seed)
    out = []
    for name in photo_parts(photos)[part]:
        photo = load_rgb(WIDER / name).copy()
        taken = np.zeros(photo.shape[:2], bool)
        strings = [found[1] for _ in range(6) if (found := render_string(rng, photo, taken)) is not None]
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, "JPEG", quality=rng.choice([60, 75, 90]))
        out.append((np.asarray(Image.open(buffer).convert("RGB")), strings))
    return out


def hidden_mask(regions: TextRegions, width: int, height: int) -> np.ndarray:
    """The pixels ``hide_text`` replaces for these regions (its grown quadrilaterals)."""
    return quads_mask(grown_quads(regions.quads, STYLE.margin), width, height)


def fraction_hidden(mask: np.ndarray, quad: np.ndarray) -> float:
    inside = quads_mask(quad[None], mask.shape[1], mask.shape[0])
    return float(mask[inside].mean()) if inside.any() else 0.0


def _ratio(hits: int, total: int) -> str:
    return f"{hits / total:.3f} ({hits}/{total})" if total else "n/a (0/0)"


def evaluate(privacy: FacePrivacy, dataset: list[tuple[np.ndarray, list[Rendered]]]) -> dict:
    stage = privacy.text_stage()
    groups: dict[str, list[int]] = {}
    numbers: dict[str, list[int]] = {"digit strings covered": [0, 0], "plain words hidden": [0, 0], "short plates hidden": [0, 0]}
    stray, stray_numbers, regions_total = 0, 0, 0

    def count(name: str, hit: bool) -> None:
        groups.setdefault(name, [0, 0])
        groups[name][0] += hit
        groups[name][1] += 1

    for rgb, strings in dataset:
        height, width = rgb.shape[:2]
        text_regions = stage.find(rgb, frozenset({"text"}))
        number_regions = stage.find(rgb, frozenset({"numbers"}))
        text_mask, number_mask = hidden_mask(text_regions, width, height), hidden_mask(number_regions, width, height)
        regions_total += len(text_regions)
        for string in strings:
            hit = fraction_hidden(text_mask, string.quad) >= COVERED
            count("all", hit)
            if string.height >= 16:
                count(">=16px", hit)
            count(f"height {'12-15' if string.height < 16 else '16-23' if string.height < 24 else '24-44'} px", hit)
            count("angle >= 4 deg" if abs(string.angle) >= 4 else "angle < 4 deg", hit)
            count("on a plate" if string.on_plate else "on the photo", hit)
            count("blurred" if string.blur else "sharp", hit)
            count(f"kind {string.kind}", hit)
            hidden = fraction_hidden(number_mask, string.quad) >= COVERED
            key = "digit strings covered" if string.digit_run else "plain words hidden" if string.kind == "word" else "short plates hidden"
            numbers[key][0] += hidden
            numbers[key][1] += 1
        for found, tally in ((text_regions, "text"), (number_regions, "numbers")):
            for quad in found.quads:
                touches = any(quads_mask(s.quad[None], width, height)[quads_mask(quad[None], width, height)].any() for s in strings)
                if not touches:
                    if tally == "text":
                        stray += 1
                    else:
                        stray_numbers += 1
    text_report = {name: _ratio(*value) for name, value in sorted(groups.items())}
    return {
        "text": text_report,
        "numbers": {name: _ratio(*value) for name, value in numbers.items()},
        "regions_found": regions_total,
        "text_regions_touching_no_string_per_image": round(stray / len(dataset), 2),
        "number_regions_touching_no_string_per_image": round(stray_numbers / len(dataset), 2),
    }


def time_1080p(privacy: FacePrivacy, frame: np.ndarray, runs: int) -> dict[str, float]:
    """Median ms of: deface's faces (detect + anonymize), our faces, faces + text, faces + numbers."""
    fused, stage, deface = privacy.detector(None), privacy.text_stage(), DefaceReference()

    def ours(hide: frozenset) -> None:
        pixels = frame
        regions = stage.find(frame, hide)
        if len(regions):
            pixels = frame.copy()
            hide_text(pixels, regions, STYLE)
        anonymize(pixels, fused.detect(frame), STYLE)

    contenders = {
        "deface faces": lambda: anonymize(frame, deface.detect(frame), STYLE),
        "faces (fused)": lambda: ours(frozenset({"faces"})),
        "faces + text": lambda: ours(frozenset({"faces", "text"})),
        "faces + numbers": lambda: ours(frozenset({"faces", "numbers"})),
    }
    for call in contenders.values():
        call()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, call in contenders.items():
            started = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - started) * 1000)
    result = {f"{name} ms": round(statistics.median(values), 1) for name, values in times.items()}
    reference = result["deface faces ms"]
    for name in ("faces (fused)", "faces + text", "faces + numbers"):
        result[f"{name} vs deface"] = round(result[f"{name} ms"] / reference, 3)
    stage.find(frame, frozenset({"numbers"}))
    result["text stages ms (numbers, one call)"] = stage.stage_ms  # type: ignore[assignment]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument(
        "--part",
        choices=PARTS,
        default="evaluation",
        help="which photos: the bench's figures (evaluation) or where settings are chosen (dev)",
    )
    options = parser.parse_args()

    privacy = FacePrivacy(get_face_settings())
    dataset = make_set(options.seed, options.photos, options.part)
    strings = sum(len(found) for _, found in dataset)
    print(f"set: {options.part} part, {len(dataset)} photos, {strings} strings, seed {options.seed}", flush=True)
    results = evaluate(privacy, dataset)
    print(json.dumps(results, indent=2), flush=True)
    frame = cv2.resize(dataset[0][0], (1920, 1080))
    results["time_1080p"] = time_1080p(privacy, frame, options.runs)
    results["settings"] = {"text_max_input_side": privacy.settings.text_max_input_side, "margin": STYLE.margin}
    print(json.dumps({"time_1080p": results["time_1080p"], "settings": results["settings"]}, indent=2))


if __name__ == "__main__":
    main()
