"""Make the text detector the functions run: the float PP-OCRv4 detector `make install` fetched,
its graph simplified.

    make simplify-text
    (= .venv/bin/python -m tools.faces.simplify_text [--int8 PATH]; needs requirements-train.txt for `onnx`)

The graph is simplified without changing what it computes (up to float rounding: 2e-7 on the
probabilities): its constants become initializers; each ``Conv -> Mul(a) -> Add(b)`` with scalar
``a``, ``b`` (PPLCNetV3's learnable affine blocks) becomes one Conv (weights x a, bias x a + b);
each ``Mul(a) -> Add(b)`` read only by a 1x1 Conv without padding goes into that Conv's weights
and bias; each ``x * clip(x + 3, 0, 6) / 6`` becomes one HardSwish (opset 14), which
onnxruntime fuses into the Conv before it. Those element-wise passes were about a third of the
detector's time on this CPU; the simplified file takes about 0.65x the original's.
It is written to ``shared/faces/model/ch_PP-OCRv4_det_simplified.onnx``; the same inputs give
the same file (its SHA-256 is in TEXT_MODEL_CARD.md).

``--int8 PATH`` also writes an 8-bit version of it (onnxruntime's static quantization as for
the face models, tools/faces/quantize.py: QDQ, 7-bit int8 weights per channel, uint8
activations, MinMax), calibrated on the pixels of the ``calibration`` part of the text bench's
photos (``tests.bench.bench_text.photo_parts``: dev photos of ``../shared/data/faces/wider_subset``
with seeded rendered strings, none of them an evaluation photo of the bench nor of the ``dev``
part where the text settings were chosen), each scaled as the detector scales it. It is not
shipped: on this AVX2 CPU without VNNI it was only 3-6% faster than the simplified float file
and covered fewer strings on the dev part (TEXT_MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from shared.faces.models import PPOCR_TEXT_DETECTION, PPOCR_TEXT_DETECTION_SIMPLIFIED
from shared.faces.settings import FaceSettings, get_face_settings
from shared.faces.text import TextDetector, text_blob, text_input_size
from tools.faces.quantize import quantize_qdq

OPSET = 14  # HardSwish
CALIBRATION_SEED = 26  # the text bench's seed


def _scalar(value: np.ndarray | None) -> float | None:
    return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


class GraphSimplifier:
    """The detector's graph as a list of nodes and a dict of constants, edited in place."""

    def __init__(self, model) -> None:  # noqa: ANN001 (onnx.ModelProto)
        from onnx import numpy_helper

        self.model = model
        graph = model.graph
        self.constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.nodes = [node for node in graph.node if node.op_type != "Constant"]
        self.removed: set[int] = set()  # ids of the nodes folded away
        self.replaced: dict[int, object] = {}  # id of a node -> the node taking its place
        self.renamed: dict[str, str] = {}  # a value folded away -> the value now carrying it

    def readers(self, name: str) -> list:
        return [node for node in self.nodes if name in node.input and id(node) not in self.removed]

    def only_reader(self, name: str, op_type: str):  # noqa: ANN201
        readers = self.readers(name)
        return readers[0] if len(readers) == 1 and readers[0].op_type == op_type else None

    def scalar_operand(self, node) -> tuple[str | None, float | None]:  # noqa: ANN001
        """(the other input, the scalar) of a Mul/Add/Div with one scalar constant input."""
        names = list(node.input)
        for index, name in enumerate(names):
            value = _scalar(self.constants.get(name))
            if value is not None and names[1 - index] not in self.constants:
                return names[1 - index], value
        return None, None

    def affine_after(self, name: str):  # noqa: ANN201
        """``Mul(a) -> Add(b)`` reading ``name`` (their only reader each): (mul, add, a, b) or None."""
        mul = self.only_reader(name, "Mul")
        add = mul and self.only_reader(mul.output[0], "Add")
        if not add:
            return None
        scale, shift = self.scalar_operand(mul)[1], self.scalar_operand(add)[1]
        return None if scale is None or shift is None else (mul, add, scale, shift)

    def set_conv(self, conv, image: str, weight: np.ndarray, bias: np.ndarray, suffix: str) -> None:  # noqa: ANN001
        weight_name, bias_name = f"{conv.input[1]}_{suffix}", f"{conv.output[0]}_{suffix}_bias"
        self.constants[weight_name], self.constants[bias_name] = weight.astype(np.float32), bias.astype(np.float32)
        del conv.input[:]
        conv.input.extend([image, weight_name, bias_name])

    def conv_weights(self, conv) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        weight = self.constants[conv.input[1]]
        bias = self.constants[conv.input[2]] if len(conv.input) > 2 else np.zeros(weight.shape[0], np.float32)
        return weight, bias

    def fold_affine_into_conv_before(self) -> None:
        """Conv -> Mul(a) -> Add(b): one Conv (weights x a, bias x a + b)."""
        for conv in [node for node in self.nodes if node.op_type == "Conv"]:
            found = self.affine_after(conv.output[0])
            if found is None:
                continue
            mul, add, scale, shift = found
            weight, bias = self.conv_weights(conv)
            self.set_conv(conv, conv.input[0], weight * scale, bias * scale + shift, "folded")
            self.removed |= {id(mul), id(add)}
            self.renamed[add.output[0]] = conv.output[0]

    def fold_affine_into_pointwise_after(self) -> None:
        """Mul(a) -> Add(b) read only by a Conv without padding: into its weights (x a) and bias
        (+ b x the sum of its weights). Not into a Conv that pads: it would pad as if its input
        were ``b`` there instead of 0, and that border effect reaches the whole of the small deep
        maps (tried: 12% faster, probabilities off by up to 1.0 on a drawn scene)."""
        from onnx import helper

        for mul in [node for node in self.nodes if node.op_type == "Mul" and id(node) not in self.removed]:
            source, _ = self.scalar_operand(mul)
            found = source and self.affine_after(source)
            if not found or found[0] is not mul:
                continue
            _, add, scale, shift = found
            conv = self.only_reader(add.output[0], "Conv")
            if conv is None or conv.input[0] != add.output[0]:
                continue
            pads = next((helper.get_attribute_value(a) for a in conv.attribute if a.name == "pads"), [0])
            if any(pads):
                continue
            weight, bias = self.conv_weights(conv)
            self.set_conv(conv, source, weight * scale, bias + shift * weight.reshape(weight.shape[0], -1).sum(axis=1), "scaled")
            self.removed |= {id(mul), id(add)}

    def fuse_hard_swish(self) -> None:
        """x * clip(x + 3, 0, 6) / 6: one HardSwish."""
        from onnx import helper

        for add in [node for node in self.nodes if node.op_type == "Add" and id(node) not in self.removed]:
            source, three = self.scalar_operand(add)
            clip = three == 3.0 and self.only_reader(add.output[0], "Clip")
            if not clip or [_scalar(self.constants.get(name)) for name in clip.input[1:]] != [0.0, 6.0]:
                continue
            mul = self.only_reader(clip.output[0], "Mul")
            div = mul and source in mul.input and self.only_reader(mul.output[0], "Div")
            if not div or _scalar(self.constants.get(div.input[1])) != 6.0:
                continue
            self.removed |= {id(add), id(clip), id(mul)}
            self.replaced[id(div)] = helper.make_node("HardSwish", [source], [div.output[0]], name=f"{div.output[0]}_hardswish")

    def model_proto(self):  # noqa: ANN201 (onnx.ModelProto)
        from onnx import numpy_helper

        kept = [self.replaced.get(id(node), node) for node in self.nodes if id(node) not in self.removed]
        for node in kept:
            for index, name in enumerate(node.input):
                while name in self.renamed:
                    name = self.renamed[name]
                node.input[index] = name
        used = {name for node in kept for name in node.input}
        graph = self.model.graph
        del graph.node[:]
        graph.node.extend(kept)
        del graph.initializer[:]
        graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in sorted(self.constants.items()) if name in used)
        return self.model


def simplified(source: Path):  # noqa: ANN201 (onnx.ModelProto)
    """The float detector with its affine blocks folded and its HardSwish fused (same results)."""
    import onnx
    from onnx import version_converter

    graph = GraphSimplifier(version_converter.convert_version(onnx.load(str(source)), OPSET))
    graph.fold_affine_into_conv_before()
    graph.fold_affine_into_pointwise_after()
    graph.fuse_hard_swish()
    model = graph.model_proto()
    onnx.checker.check_model(model)
    return model


def calibration_inputs(max_input_side: int, min_input_side: int) -> Iterator[dict[str, np.ndarray]]:
    """The detector's input for each photo of the bench's calibration part, scaled as it scales them."""
    from tests.bench.bench_text import make_set

    for rgb, _ in make_set(CALIBRATION_SEED, 24, "calibration"):
        height, width = rgb.shape[:2]
        yield {"x": text_blob(rgb, text_input_size(width, height, max_input_side, min_input_side))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--int8", type=Path, help="also write an 8-bit version there (not shipped; for comparison)")
    options = parser.parse_args()
    import onnx
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    path = PPOCR_TEXT_DETECTION_SIMPLIFIED.path
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(simplified(get_face_settings().model_dir / PPOCR_TEXT_DETECTION.filename), str(path))
    written = [path]
    if options.int8:
        max_side = FaceSettings.model_fields["text_max_input_side"].default
        quantize_qdq(path, options.int8, calibration_inputs(max_side, TextDetector.MIN_INPUT_SIDE))
        written.append(options.int8)
    for made in written:
        print(f"{made}: {made.stat().st_size} bytes, sha256 {hashlib.sha256(made.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
