"""A pretrained backbone for the defect model: the feature layers of PP-OCRv4's text detector.

The detector (PaddleOCR, Apache-2.0) is the ONNX file ``make install`` already takes from the
rapidocr-onnxruntime wheel and checks by SHA-256 (``shared/faces/models.py``): nothing is
downloaded. Its backbone, PP-LCNetV3, was trained on text photos; here it is read back into torch
as a trainable module and fine-tuned on NEU-DET (``train --backbone ppocr``).

``OnnxFeatures`` runs the part of an ONNX graph that a list of its tensors needs, with the graph's
named initialisers (Paddle's ``*.w_0`` and ``*.b_0``) as parameters and its other constants as
buffers. It knows the handful of operators that backbone uses, and refuses any other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

from shared.faces.models import PPOCR_TEXT_DETECTION, model_path
from shared.faces.settings import get_face_settings

#: PP-LCNetV3's four stages (strides 4, 8, 16, 32 of the input): their last tensors and channels
PPOCR_STAGES = ("p2o.Add.43", "p2o.Add.71", "p2o.Add.147", "p2o.Add.215")
PPOCR_WIDTHS = (48, 96, 192, 384)
#: the detector's input normalisation (ImageNet's RGB mean and deviation, of 0..1 values)
PPOCR_MEAN = (0.485, 0.456, 0.406)
PPOCR_STD = (0.229, 0.224, 0.225)
OPERATORS = {"Add", "Mul", "Div", "Clip", "Relu", "HardSigmoid", "GlobalAveragePool", "Conv", "BatchNormalization"}


def ppocr_model_file() -> Path:
    """The detector's file in the model directory (``VISIONFN_MODEL_DIR``), where ``make install`` put it."""
    return model_path(PPOCR_TEXT_DETECTION, get_face_settings().model_dir)


class OnnxFeatures(nn.Module):
    """The tensors ``outputs`` of the ONNX graph at ``path``, computed from its one input, trainable."""

    def __init__(self, path: Path, outputs: tuple[str, ...]) -> None:
        super().__init__()
        graph = onnx.load(str(path)).graph
        constants = {node.output[0]: numpy_helper.to_array(node.attribute[0].t) for node in graph.node if node.op_type == "Constant"}
        constants |= {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
        producers = {output: node for node in graph.node if node.op_type != "Constant" for output in node.output}
        needed: set[str] = set()
        pending = list(outputs)
        while pending:
            name = pending.pop()
            if name in needed or name in constants or name not in producers:
                continue
            needed.add(name)
            pending.extend(producers[name].input)
        self.nodes = [node for node in graph.node if node.op_type != "Constant" and node.output[0] in needed]
        unknown = {node.op_type for node in self.nodes} - OPERATORS
        if unknown:
            raise ValueError(f"{path}: operators {sorted(unknown)} are not supported")
        self.input = graph.input[0].name
        self.outputs = outputs
        self.params = nn.ParameterDict()
        self.keys: dict[str, str] = {}  # a constant's name in the graph -> its key here
        statistics = {name for node in self.nodes if node.op_type == "BatchNormalization" for name in node.input[3:]}
        for node in self.nodes:
            for name in node.input:
                if name in constants and name not in self.keys:
                    key = f"t{len(self.keys)}"
                    self.keys[name] = key
                    value = torch.from_numpy(np.array(constants[name], np.float32))
                    if name.startswith("p2o.") or name in statistics:  # the exporter's constants (3, 6), BN's statistics: fixed
                        self.register_buffer(key, value)
                    else:
                        self.params[key] = nn.Parameter(value)
        self.attributes = [{a.name: onnx.helper.get_attribute_value(a) for a in node.attribute} for node in self.nodes]

    def tensor(self, name: str, values: dict[str, torch.Tensor]) -> torch.Tensor:
        if name in values:
            return values[name]
        key = self.keys[name]
        return self.params[key] if key in self.params else getattr(self, key)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values = {self.input: x}
        for node, attributes in zip(self.nodes, self.attributes, strict=True):
            args = [self.tensor(name, values) for name in node.input if name]
            values[node.output[0]] = run(node.op_type, args, attributes)
        return [values[name] for name in self.outputs]


def run(op: str, args: list[torch.Tensor], attributes: dict) -> torch.Tensor:
    """One ONNX operator (of ``OPERATORS``) in torch."""
    if op == "Add":
        return args[0] + args[1]
    if op == "Mul":
        return args[0] * args[1]
    if op == "Div":
        return args[0] / args[1]
    if op == "Clip":
        return torch.minimum(torch.maximum(args[0], args[1]), args[2])
    if op == "Relu":
        return F.relu(args[0])
    if op == "HardSigmoid":
        return (attributes["alpha"] * args[0] + attributes["beta"]).clamp(0.0, 1.0)
    if op == "GlobalAveragePool":
        return args[0].mean((2, 3), keepdim=True)
    if op == "BatchNormalization":  # frozen statistics, trainable scale and shift
        x, scale, shift, mean, variance = args
        return F.batch_norm(x, mean, variance, scale, shift, False, 0.0, attributes["epsilon"])
    if op == "Conv":
        padding = attributes.get("pads", [0, 0, 0, 0])
        if padding[:2] != padding[2:]:
            raise ValueError(f"asymmetric padding {padding} is not supported")
        return F.conv2d(
            args[0],
            args[1],
            args[2] if len(args) > 2 else None,
            tuple(attributes.get("strides", [1, 1])),
            tuple(padding[:2]),
            tuple(attributes.get("dilations", [1, 1])),
            attributes.get("group", 1),
        )
    raise ValueError(f"operator {op} is not supported")


class PpocrBackbone(nn.Module):
    """The grey 0..255 image in, PP-LCNetV3's features at strides 4, 8, 16 and 32 out."""

    widths = PPOCR_WIDTHS

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        path = path or ppocr_model_file()
        self.features = OnnxFeatures(path, PPOCR_STAGES)
        check_against_onnxruntime(self.features, path)
        self.register_buffer("mean", torch.tensor(PPOCR_MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(PPOCR_STD).view(1, 3, 1, 1) * 255)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.features((image.expand(-1, 3, -1, -1) - self.mean) / self.std)


@torch.no_grad()
def check_against_onnxruntime(features: OnnxFeatures, path: Path, size: int = 224) -> None:
    """Raise unless ``features`` computes what onnxruntime computes for the same tensors of the graph."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    model.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in features.outputs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    example = np.random.default_rng(0).uniform(-2, 2, (1, 3, size, size)).astype(np.float32)
    expected = session.run(list(features.outputs), {features.input: example})
    got = features(torch.from_numpy(example))
    worst = max(float(np.abs(a - b.numpy()).max() / max(1.0, np.abs(a).max())) for a, b in zip(expected, got, strict=True))
    if worst > 1e-4:
        raise RuntimeError(f"{path}: the torch copy of the graph disagrees with onnxruntime by {worst:.2e}")
