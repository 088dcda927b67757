"""The platform with every function in its own container (`make up RUNTIME=container`): the images
of `make images`, run by podman on the host network under the runner's supervision.

A second platform of its own (stack ``visionfn-containers``, its own ports) beside the process-mode
one; the latency test compares the same short task on both. Measurements are printed.
"""

import io
import json
import shutil
import statistics
import subprocess
import sys
import time
import uuid

import pytest
from PIL import Image

from infra.images import FunctionImage, out_of_date
from infra.processes import PODMAN
from shared.platform.settings import PROJECT_ROOT
from tests.conftest import CROWD_PHOTO, localstack_client, shared_data
from tests.integration.conftest import object_exists, wait_for

MESSI = "matching/opencv_samples/messi5.jpg"

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (apt-get install podman runc)")


MEASURED: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def measurements(request):
    """What the tests measured, printed at the end of this module and kept in .run/containers/measured.txt."""
    yield
    if MEASURED:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            for line in ["", *MEASURED]:
                reporter.write_line(line)
        (PROJECT_ROOT / ".run" / "containers").mkdir(parents=True, exist_ok=True)
        (PROJECT_ROOT / ".run" / "containers" / "measured.txt").write_text("\n".join(MEASURED) + "\n")


@pytest.fixture(scope="module")
def containers(database_url):
    """The container-mode platform; the images must be there (`make test` builds them first)."""
    from infra.template import function_specs, load_template
    from tests.platform import running_platform

    images = [FunctionImage(spec.name, spec.target) for spec in function_specs(load_template()) if spec.triggered]
    missing, _stale = out_of_date(images)
    assert not missing, f"no image {missing}: run `make images`"
    began = time.monotonic()
    with running_platform(database_url, name="containers", VISIONFN_RUNTIME="container", VISIONFN_BRIDGE_WAIT_SECONDS="2") as running:
        _measured(
            "container platform ready",
            f"{time.monotonic() - began:.1f} s from `up` (runner: {running.state['ready_seconds']} s); functions listening after "
            + ", ".join(f"{name} {process['listening_after']} s" for name, process in _containers(running).items()),
        )
        yield running
        stopping = time.monotonic()
    _measured("container platform stopped", f"{time.monotonic() - stopping:.1f} s")


def _containers(platform) -> dict[str, dict]:
    """The function processes of state.json that are containers (kept current by the runner)."""
    processes = json.loads((platform.run_dir / "state.json").read_text())["processes"]
    return {name: process for name, process in processes.items() if process.get("container")}


def _measured(what: str, value: str) -> None:
    MEASURED.append(f"[measured] {what}: {value}")


def _finished(platform, uid: str, timeout: float = 90) -> dict:
    def finished():
        task = platform.http.get(f"{platform.gateway}/api/v1/tasks/{uid}", timeout=10).json()
        return task if task["status"] in ("done", "error") else None

    return wait_for(finished, timeout=timeout, interval=0.05)


def _crop_png(data: bytes, box=(200, 50, 260, 110)) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).crop(box).save(buffer, format="PNG")
    return buffer.getvalue()


def _template_task(platform) -> dict:
    messi = shared_data(MESSI)
    response = platform.http.post(
        f"{platform.gateway}/api/v1/match/template",
        files={"image": ("messi5.jpg", messi), "template": ("ball.png", _crop_png(messi))},
        data={"threshold": "0.9", "max_results": "5"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return _finished(platform, response.json()["uid"])


def test_every_function_runs_in_its_container_as_a_user_not_root(containers):
    running = _containers(containers)
    assert set(running) == set(containers.state["functions"])
    for name, process in running.items():
        assert process["container"] == f"visionfn-containers-{name}"
        users = subprocess.run([*PODMAN, "top", process["container"], "user"], capture_output=True, text=True, check=True)
        assert users.stdout.split()[1:] and set(users.stdout.split()[1:]) == {"visionfn"}, (name, users.stdout)
    status = subprocess.run(
        [sys.executable, "-m", "infra.runner", "status"],
        cwd=PROJECT_ROOT,
        env={**containers.env, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "VISIONFN_RUN_DIR": str(containers.run_dir)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert '"runtime": "container"' in status.stdout and "visionfn-containers-face_process (Up" in status.stdout


def test_health_and_a_photo_through_the_gateway(containers):
    health = containers.http.get(f"{containers.gateway}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert health.json()["models"]["files"] == {"centerface_int8": "ok", "retinaface_mnet025_int8": "ok"}  # baked in
    response = containers.http.post(f"{containers.gateway}/process", files={"image": shared_data(CROWD_PHOTO)}, timeout=60)
    assert response.status_code == 200, response.text
    assert int(response.headers["X-Faces-Count"]) >= 5
    assert Image.open(io.BytesIO(response.content)).format == "JPEG"


def test_a_template_task_to_done(containers):
    task = _template_task(containers)
    assert task["status"] == "done", task["error"]
    assert task["result_data"]["matches"][0] == {"x": 200, "y": 50, "w": 60, "h": 60, "score": 1.0}


def test_a_photo_put_to_the_face_inbox_is_anonymized(containers):
    s3, bucket = localstack_client(containers, "s3"), containers.state["bucket"]
    name = f"{uuid.uuid4().hex}/crowd.jpg"
    s3.put_object(Bucket=bucket, Key=f"inbox/faces/{name}", Body=shared_data(CROWD_PHOTO))
    wait_for(lambda: object_exists(s3, bucket, f"outputs/faces/{name}.json"), timeout=60)
    report = json.loads(s3.get_object(Bucket=bucket, Key=f"outputs/faces/{name}.json")["Body"].read())
    assert report["total_count"] >= 5
    assert f"inbox/faces/{name}: " in containers.log("face_process")  # the container's output, in the usual log


def test_a_chain_to_done(containers):
    messi = shared_data(MESSI)
    answer = containers.http.post(
        f"{containers.gateway}/api/v1/match/chain",
        files={"image": ("image.png", messi), "template": ("template.png", _crop_png(messi))},
        data={"steps": json.dumps([{"tool": "template"}, {"tool": "feature", "params": {"detector": "SIFT"}}])},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    chain = _finished(containers, answer.json()["uid"], timeout=120)
    assert chain["status"] == "done", chain
    assert (chain["result_data"]["chain_result"], chain["result_data"]["completed_step"]) == ("found", 1)


def test_a_killed_container_comes_back(containers):
    name = "visionfn-containers-health"
    before = _containers(containers)["health"]["restarts"]
    killed = time.monotonic()
    subprocess.run([*PODMAN, "kill", name], capture_output=True, check=True)
    health = wait_for(lambda: _containers(containers)["health"]["restarts"] > before and _containers(containers)["health"], timeout=30)
    assert health["last_exit"] == "killed by SIGKILL (container exit status 137)"

    def answers():
        try:
            return containers.http.get(f"{containers.gateway}/health", timeout=5).status_code == 200
        except OSError:
            return False

    wait_for(answers, timeout=60, interval=0.1)
    _measured("a killed container back and answering", f"{time.monotonic() - killed:.1f} s (the first restart waits 0.5 s)")


def test_the_same_task_in_a_process_and_in_a_container(platform, containers):
    """The short template task, submission to `done`, and one synchronous photo, alternately on
    the process-mode platform and this one."""
    seconds: dict[str, dict[str, list[float]]] = {"process": {"task": [], "photo": []}, "container": {"task": [], "photo": []}}
    photo = shared_data(CROWD_PHOTO)
    for name, running in [("process", platform), ("container", containers)] * 5:
        began = time.monotonic()
        assert _template_task(running)["status"] == "done"
        seconds[name]["task"].append(time.monotonic() - began)
        began = time.monotonic()
        assert running.http.post(f"{running.gateway}/process", files={"image": photo}, timeout=60).status_code == 200
        seconds[name]["photo"].append(time.monotonic() - began)
    processes = json.loads((platform.run_dir / "state.json").read_text())["processes"]
    _measured(
        "process platform, for comparison: functions listening after",
        ", ".join(f"{name} {processes[name]['listening_after']} s" for name in platform.state["functions"]),
    )
    for what in ("task", "photo"):
        _measured(
            f"{'template task, submit to done' if what == 'task' else 'POST /process, crowd photo'} (median of 5)",
            "; ".join(f"{name} {statistics.median(kinds[what]):.2f} s" for name, kinds in seconds.items()),
        )
