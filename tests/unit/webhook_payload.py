"""The task-finished payload the webhooks' unit tests sign and send."""

BODY = b'{"uid":"a1b2","status":"done","tool":"feature","result_files":[],"result_data":{"good_matches":342}}'
