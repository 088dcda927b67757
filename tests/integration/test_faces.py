"""Face privacy on the real stack: HTTP through the gateway, and the inbox/faces/ trigger."""

import io
import json
import uuid

from PIL import Image

from tests.conftest import CROWD_PHOTO, shared_data
from tests.integration.conftest import drained, object_exists, wait_for
from tests.text_images import CARD_NUMBER, SHOP_WORD, changed_fraction, encoded, street_scene


def test_seed_client_works_unchanged(platform):
    """The seed's own client: POST /process with files={'image': f}, read X-Faces-Count."""
    response = platform.http.post(f"{platform.gateway}/process", files={"image": io.BytesIO(shared_data(CROWD_PHOTO))}, timeout=60)
    response.raise_for_status()
    assert int(response.headers["X-Faces-Count"]) >= 5
    assert Image.open(io.BytesIO(response.content)).format == "JPEG"
    detail = platform.http.post(
        f"{platform.gateway}/process", files={"image": shared_data(CROWD_PHOTO)}, headers={"Accept": "application/json"}, timeout=60
    ).json()
    assert detail["total_count"] == int(response.headers["X-Faces-Count"])
    detected = platform.http.post(f"{platform.gateway}/detect", files={"image": shared_data(CROWD_PHOTO)}, timeout=60).json()
    assert detected.get("total_count", 0) > 0  # the seed's should_process()


def test_health_names_the_model(platform):
    body = platform.http.get(f"{platform.gateway}/health", timeout=10).json()
    assert body["status"] == "ok"
    assert body["detector"] == "fused" and body["model"] == "centerface_int8+retinaface_mnet025_int8"
    assert body["models"]["files"] == {"centerface_int8": "ok", "retinaface_mnet025_int8": "ok"}


def test_bad_upload_through_the_gateway_is_a_clear_400(platform):
    response = platform.http.post(f"{platform.gateway}/process", files={"image": ("x.jpg", b"not an image")}, timeout=30)
    assert response.status_code == 400
    assert "not a supported image" in response.json()["detail"]


def test_inbox_upload_is_anonymized_once_with_a_sidecar_and_a_row(platform, database_url, s3, bucket):
    name = f"{uuid.uuid4().hex}/crowd photo.jpg"
    s3.put_object(Bucket=bucket, Key=f"inbox/faces/{name}", Body=shared_data(CROWD_PHOTO))
    output, sidecar = f"outputs/faces/{name}", f"outputs/faces/{name}.json"
    wait_for(lambda: object_exists(s3, bucket, sidecar), timeout=60)
    report = json.loads(s3.get_object(Bucket=bucket, Key=sidecar)["Body"].read())
    assert report["total_count"] >= 5
    image = Image.open(io.BytesIO(s3.get_object(Bucket=bucket, Key=output)["Body"].read()))
    assert image.format == "JPEG" and len(image.getexif()) == 0
    etag = s3.head_object(Bucket=bucket, Key=f"inbox/faces/{name}")["ETag"].strip('"')
    record = wait_for(lambda: _face_record(database_url, f"inbox/faces/{name}", etag))
    assert record.faces_count == report["total_count"] and record.output_key == output


def test_the_inbox_hides_what_the_deploy_s_face_inbox_hide_names(platform, s3, bucket):
    """The test platform is deployed with VISIONFN_FACE_INBOX_HIDE=faces,numbers (tests/conftest.py),
    passed as the stack's FaceInboxHide parameter to the face function's environment: a picture put
    under inbox/faces/ has its card number hidden and its shop sign left, and the sidecar lists it."""
    image, boxes = street_scene()
    name = f"{uuid.uuid4().hex}/street.png"
    s3.put_object(Bucket=bucket, Key=f"inbox/faces/{name}", Body=encoded(image))
    output, sidecar = f"outputs/faces/{name}", f"outputs/faces/{name}.json"
    wait_for(lambda: object_exists(s3, bucket, sidecar), timeout=60)
    report = json.loads(s3.get_object(Bucket=bucket, Key=sidecar)["Body"].read())
    assert [region["kind"] for region in report["text"]] == ["number"] and report["text_count"] == 1
    hidden = s3.get_object(Bucket=bucket, Key=output)["Body"].read()
    assert changed_fraction(image, hidden, boxes[CARD_NUMBER]) > 0.3
    assert changed_fraction(image, hidden, boxes[SHOP_WORD]) == 0.0


def _face_record(database_url, key: str, etag: str):
    from shared.faces.tables import FaceAnonymization
    from shared.platform.db.engine import session_scope

    with session_scope(database_url) as session:
        return session.query(FaceAnonymization).filter_by(object_key=key, etag=etag).one_or_none()


def test_redelivered_inbox_object_yields_one_result(platform, aws, database_url, s3, bucket):
    from sqlalchemy import func, select

    from shared.faces.tables import FaceAnonymization
    from shared.platform.db.engine import session_scope

    key = f"inbox/faces/{uuid.uuid4().hex}.jpg"
    s3.put_object(Bucket=bucket, Key=key, Body=shared_data(CROWD_PHOTO), Metadata={"visionfn-fail-attempts": "1"})
    wait_for(lambda: object_exists(s3, bucket, key.replace("inbox/", "outputs/", 1) + ".json"), timeout=60)
    wait_for(lambda: drained(aws, "visionfn-test-face-inbox"), timeout=60)  # every delivery is over
    with session_scope(database_url) as session:
        rows = session.scalar(select(func.count()).select_from(FaceAnonymization).where(FaceAnonymization.object_key == key))
    assert rows == 1
    anonymized = [line for line in platform.log("face_process").splitlines() if key in line and "anonymized ->" in line]
    assert len(anonymized) == 1  # the work done, counted
    assert f"{key}: injected failure on delivery 1 of 1" in platform.log("face_process")
