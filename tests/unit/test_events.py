"""Event models against real payloads from events/."""

from shared.platform.events import BatchItemFailure, BatchResponse, S3Notification, SqsEvent
from tests.conftest import load_event


def test_s3_notification_key_is_url_decoded():
    notification = S3Notification.model_validate(load_event("s3_object_created"))
    obj = notification.records[0].s3.object
    assert obj.key == "uploads/0123456789abcdef0123456789abcdef/team+photo.png"
    assert obj.decoded_key == "uploads/0123456789abcdef0123456789abcdef/team photo.png"
    assert obj.etag == "d41d8cd98f00b204e9800998ecf8427e"


def test_sqs_batch_yields_created_objects_and_ignores_s3_test_event(sqs_s3_batch):
    event = SqsEvent.model_validate(sqs_s3_batch)
    upload, test_event = event.records
    objects = upload.created_objects()
    assert [o.key for o in objects] == ["uploads/0123456789abcdef0123456789abcdef/team photo.png"]
    assert objects[0].bucket == "visionfn-local-data-000000000000"
    assert upload.attributes.approximate_receive_count == 1
    assert test_event.created_objects() == []


def test_batch_response_uses_lambda_field_names():
    response = BatchResponse(batch_item_failures=[BatchItemFailure(item_identifier="m-1")])
    assert response.to_json() == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
