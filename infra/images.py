"""Every function's container image, from infra/Dockerfile, with podman.

``python -m infra.images [--base IMAGE|bookworm] [FUNCTION ...]`` (what `make images` runs) builds
``visionfn/<function>:latest`` for every function of template.yaml (or the ones named) and prints
each image's size, what it holds and the time taken. All images share one layer of runtime
requirements (built once); each adds shared/ and its own folder, and the face functions the face
models. An image whose inputs (the Dockerfile, the requirements, the code it copies, the base, the
build arguments) are those it was built from is not built again: a second run takes seconds.

The base is ``--base`` or, by default, python:3.11-slim where this machine has it (``podman pull
python:3.11-slim`` once where a registry is reachable), else a Debian bookworm base made here with
mmdebstrap (Debian packages only, no registry): ``localhost/visionfn-base:bookworm``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from infra.processes import PODMAN
from infra.settings import get_runner_settings
from infra.template import function_specs, load_template
from shared.platform.settings import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "infra" / "Dockerfile"
OFFICIAL_BASE = "docker.io/library/python:3.11-slim"
LOCAL_BASE = "localhost/visionfn-base:bookworm"
#: Debian packages of the local base: Python 3.11 and its venv module (ensurepip), CA certificates;
#: no documentation but the copyright files
LOCAL_BASE_COMMAND = (
    "mmdebstrap",
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "bookworm",
)
#: pip inside the build trusts this machine's CA bundle (mounted read-only where it has one)
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
#: Functions whose image carries the fetched face models (/app/.models, Dockerfile MODELS=faces):
#: the face functions, and health, which reports whether the default detector's files are there.
FACE_MODEL_FUNCTIONS = frozenset({"face_detect", "face_process", "face_video", "health"})
#: What the images copy from the build context besides functions/<name>/ (see infra/Dockerfile)
COMMON_INPUTS = (
    "infra/Dockerfile",
    ".dockerignore",
    "requirements.txt",
    "requirements-nodeps.txt",
    "shared",
    "infra/__init__.py",
    "infra/serve.py",
    "infra/settings.py",
    "infra/entry.sh",
    "tools/__init__.py",
    "tools/fetch_models.py",
)
#: podman builds at once once the shared layers are there
BUILDS_AT_ONCE = 3
INPUTS_LABEL = "visionfn.inputs"  # the digest of what the image was built from
BASE_LABEL = "visionfn.base"  # the base image's id it was built on


class ImageError(RuntimeError):
    pass


def image_name(function: str) -> str:
    """The image of a function, as `make images` tags it and the container runtime runs it."""
    return f"localhost/visionfn/{function}:latest"


@dataclass(frozen=True)
class FunctionImage:
    function: str
    target: str

    @property
    def name(self) -> str:
        return image_name(self.function)

    @property
    def models(self) -> str:
        return "faces" if self.function in FACE_MODEL_FUNCTIONS else "none"

    @property
    def holds(self) -> str:
        models = " + face models" if self.models == "faces" else ""
        return f"base + requirements{models} + shared/ + functions/{self.function}/"


def function_images() -> list[FunctionImage]:
    return [FunctionImage(spec.name, spec.target) for spec in function_specs(load_template())]


def podman(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *arguments], capture_output=True, text=True, check=check)


def image_id(name: str) -> str | None:
    answer = podman("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return answer.stdout.strip() if answer.returncode == 0 else None


def _files_digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        files = (
            [path]
            if path.is_file()
            else sorted(file for file in path.rglob("*") if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc")
        )
        for file in files:
            digest.update(str(file.relative_to(PROJECT_ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def inputs_digest(image: FunctionImage, base_id: str, common: str | None = None) -> str:
    """What an image is built from: the common inputs (``common``: their digest, when known), its
    function's folder, the base image and the build arguments."""
    common = common or _files_digest([PROJECT_ROOT / path for path in COMMON_INPUTS])
    own = _files_digest([PROJECT_ROOT / "functions" / image.function])
    return hashlib.sha256(f"{common} {own} {base_id} {image.models} {image.target}".encode()).hexdigest()


@dataclass(frozen=True)
class BuiltImage:
    id: str
    inputs: str  # its INPUTS_LABEL
    base_id: str  # its BASE_LABEL
    size: int  # bytes, its base included


def built_images() -> dict[str, BuiltImage]:
    """Image name -> what podman holds of it, for every visionfn function image here."""
    for _attempt in range(3):  # an image removed while podman lists them fails the listing
        answer = podman("images", "--filter", "reference=localhost/visionfn/*", "--format", "json", check=False)
        if answer.returncode == 0:
            break
        time.sleep(1)
    else:
        raise ImageError(f"podman images failed: {answer.stderr.strip()}")
    found = {}
    for entry in json.loads(answer.stdout or "[]"):
        labels = entry.get("Labels") or {}
        for name in entry.get("Names") or []:
            found[name] = BuiltImage(entry["Id"], labels.get(INPUTS_LABEL, ""), labels.get(BASE_LABEL, ""), int(entry.get("Size", 0)))
    return found


def out_of_date(images: list[FunctionImage]) -> tuple[list[str], list[str]]:
    """(images missing, images built from other inputs than this checkout's): what the container
    runtime checks before it starts."""
    built = built_images()
    missing = [image.name for image in images if image.name not in built]
    common = _files_digest([PROJECT_ROOT / path for path in COMMON_INPUTS])
    stale = [
        image.name
        for image in images
        if image.name in built and built[image.name].inputs != inputs_digest(image, built[image.name].base_id, common)
    ]
    return missing, stale


def ensure_local_base() -> str:
    """The Debian bookworm base, made once with mmdebstrap (about 30 s) and imported."""
    if image_id(LOCAL_BASE):
        return LOCAL_BASE
    if not shutil.which(LOCAL_BASE_COMMAND[0]):
        raise ImageError(
            f"no base image: neither {OFFICIAL_BASE} (podman pull it where a registry is reachable) "
            "nor mmdebstrap (apt-get install mmdebstrap) to make one from Debian packages"
        )
    print(f"[images] making the base {LOCAL_BASE} with mmdebstrap (Debian bookworm, python3)", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        tarball = Path(folder) / "base.tar"
        made = subprocess.run([*LOCAL_BASE_COMMAND, str(tarball)], capture_output=True, text=True, check=False)
        if made.returncode != 0:
            raise ImageError("mmdebstrap failed:\n" + "\n".join(made.stderr.splitlines()[:20]))
        imported = podman("import", "--change", 'CMD ["/bin/sh"]', str(tarball), LOCAL_BASE, check=False)
        if imported.returncode != 0:
            raise ImageError(f"podman import failed: {imported.stderr.strip()}")
    print(f"[images] base made in {time.monotonic() - started:.1f} s", flush=True)
    return LOCAL_BASE


def choose_base(requested: str | None) -> str:
    if requested == "bookworm":
        return ensure_local_base()
    if requested:
        return requested
    return OFFICIAL_BASE if image_id(OFFICIAL_BASE) else ensure_local_base()


def build(image: FunctionImage, base: str, base_id: str, digest: str, log_path: Path) -> None:
    command = [
        *PODMAN,
        "build",
        "--network",
        "host",
        "--file",
        str(DOCKERFILE),
        "--build-arg",
        f"BASE={base}",
        "--build-arg",
        f"MODELS={image.models}",
        "--build-arg",
        f"FUNCTION={image.function}",
        "--build-arg",
        f"TARGET={image.target}",
        "--label",
        f"{INPUTS_LABEL}={digest}",
        "--label",
        f"{BASE_LABEL}={base_id}",
        "--label",
        f"visionfn.function={image.function}",
        "--tag",
        image.name,
    ]
    if CA_BUNDLE.is_file():
        command += ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    with log_path.open("w") as log:
        result = subprocess.run([*command, str(PROJECT_ROOT)], stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise ImageError(f"building {image.name} failed (log {log_path}):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help=f"base image: an image name, or `bookworm` for {LOCAL_BASE}")
    parser.add_argument("functions", nargs="*", help="only these functions (default: all)")
    options = parser.parse_args(argv)
    if not shutil.which(PODMAN[0]):
        print(
            "[images] podman is not installed: no function images (`make up RUNTIME=container` and its "
            "tests need them; apt-get install podman runc)",
            flush=True,
        )
        return 0
    images = function_images()
    unknown = set(options.functions) - {image.function for image in images}
    if unknown:
        print(f"[images] no such function in template.yaml: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    images = [image for image in images if not options.functions or image.function in options.functions]
    log_dir = get_runner_settings().run_dir / "images"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        base = choose_base(options.base)
        print(f"[images] base {base}", flush=True)
        build_all(images, base, log_dir)
    except ImageError as error:
        print(f"[images] ERROR: {error}", file=sys.stderr, flush=True)
        return 1
    print(f"[images] {len(images)} images in {time.monotonic() - started:.1f} s", flush=True)
    return 0


def build_all(images: list[FunctionImage], base: str, log_dir: Path) -> None:
    """Each image not built from these inputs yet: the first of each kind (with and without the face
    models) alone, since it builds the layers the others share, then the others BUILDS_AT_ONCE at a
    time (most of a build that finds its layers is podman's own work, not the machine's)."""
    base_id = image_id(base) or base  # a base podman will pull: its name
    common = _files_digest([PROJECT_ROOT / path for path in COMMON_INPUTS])
    existing = built_images()
    pending = []
    for image in images:
        digest = inputs_digest(image, base_id, common)
        previous = existing.get(image.name)
        if previous and previous.inputs == digest:
            _report(image, previous.size, "cached")
        else:
            pending.append((image, digest, previous))
    first = [next(entry for entry in pending if entry[0].models == kind) for kind in {entry[0].models for entry in pending}]
    rest = [entry for entry in pending if entry not in first]

    replaced: list[str] = []

    def build_one(entry: tuple[FunctionImage, str, BuiltImage | None]) -> None:
        image, digest, previous = entry
        begun = time.monotonic()
        build(image, base, base_id, digest, log_dir / f"{image.function}.log")
        now = podman("image", "inspect", "--format", "{{.Id}} {{.Size}}", image.name).stdout.split()
        if previous and previous.id != now[0]:
            replaced.append(previous.id)
        _report(image, int(now[1]), f"built in {time.monotonic() - begun:5.1f} s")

    try:
        for entry in first:
            build_one(entry)
        with ThreadPoolExecutor(max_workers=BUILDS_AT_ONCE) as pool:
            for done in [pool.submit(build_one, entry) for entry in rest]:
                done.result()
    finally:
        # the replaced images go once every build is done (also when one failed): removing one's layers while
        # another build looks for cached layers fails that build ("layer not known"); one something uses stays
        for old_id in replaced:
            podman("rmi", old_id, check=False)


def _report(image: FunctionImage, size: int, state: str) -> None:
    print(f"[images] {image.name:<40} {size / 1e6:7.0f} MB  {state:<16} {image.holds}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
