"""Join defect models trained with different seeds into one ONNX file whose outputs are their mean.

    .venv/bin/python -m tools.defects.ensemble A.onnx B.onnx [...] --out X.onnx
    (needs requirements-train.txt for `onnx`; then `python -m tools.defects.evaluate --model X.onnx`)

Each model must follow the contract of ``shared/defects/model.py`` with the same input (name and
shape) and the same output shapes. The joined graph holds every model's nodes side by side, each
under its own name prefix, all reading the one input; ``class_probs``, ``heatmap`` and ``boxes``
are the element-wise ``Mean`` of the models' outputs. So the file follows the same contract, and
the runtime code does not know it holds several networks: one ``session.run`` computes them all.

Tried and not shipped (the model card's rows "e2" and "e3"): on val, two or three seeds averaged
scored as the shipped model alone (0.750-0.752 against 0.748 mAP@0.5).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shared.defects.model import OUTPUTS

OPSET = 17


def joined(paths: list[Path]):  # noqa: ANN201 (onnx.ModelProto)
    """One model: every model of ``paths`` reading the same input, their outputs averaged."""
    import onnx
    from onnx import compose, helper

    models = [onnx.load(str(path)) for path in paths]
    (image,) = models[0].graph.input
    for path, model in zip(paths, models, strict=True):
        if [i.name for i in model.graph.input] != [image.name] or model.graph.input[0].type != image.type:
            raise ValueError(f"{path}: its input differs from {paths[0]}'s")
        if sorted(o.name for o in model.graph.output) != sorted(OUTPUTS):
            raise ValueError(f"{path}: outputs {[o.name for o in model.graph.output]}, expected {list(OUTPUTS)}")
    nodes, initializers = [], []
    for number, model in enumerate(models):
        prefixed = compose.add_prefix(model, f"m{number}/", rename_inputs=False)
        nodes += prefixed.graph.node
        initializers += prefixed.graph.initializer
    outputs = []
    for name in OUTPUTS:
        nodes.append(helper.make_node("Mean", [f"m{number}/{name}" for number in range(len(models))], [name], name=f"mean/{name}"))
        (declared,) = (o for o in models[0].graph.output if o.name == name)
        outputs.append(declared)
    graph = helper.make_graph(nodes, "neu_det_ensemble", [image], outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tools.defects.ensemble")
    model.ir_version = models[0].ir_version
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path, nargs="+", help="ONNX defect models (the contract), two or more")
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args(argv)
    if len(options.models) < 2:
        parser.error("give two or more models")
    import onnx

    options.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(joined(options.models), str(options.out))
    print(f"{options.out}: the mean of {len(options.models)} models")


if __name__ == "__main__":
    main()
