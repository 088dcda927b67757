"""Steel surface defect inspection: a small ONNX model trained on NEU-DET that gives an image's
class and locates its defects (``model.py``, the request-time core), with its training,
evaluation and data-split code (``train.py``, ``evaluate.py``, ``dataset.py``, ``metrics.py``)."""
