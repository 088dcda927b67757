"""The task repository against a real Postgres: atomic claims, leases, finishing, paging."""

import threading
import uuid

import pytest

from shared.platform.errors import LeaseLost, TaskNotFound
from shared.platform.leases import Claim, Lease
from shared.platform.tasks import TaskRepository
from tests.clock import Clock


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tasks(database_url, clock):
    """The repository on the test's clock: leases lapse when the test says, not when the machine does."""
    return TaskRepository(database_url, clock=clock)


def test_create_and_get(tasks):
    created = tasks.create("template", {"threshold": 0.8}, ["uploads/x/image.png"])
    fetched = tasks.get(created.uid)
    assert fetched.status == "queued"
    assert fetched.params == {"threshold": 0.8}
    assert fetched.input_files == ["uploads/x/image.png"]
    assert fetched.thumbnails == fetched.result_files == []
    assert fetched.result_data is None and fetched.error is None
    assert fetched.created_at.tzinfo is not None


def test_unknown_uid(tasks):
    with pytest.raises(TaskNotFound):
        tasks.get(uuid.uuid4().hex)


def test_claim_happens_once_even_when_racing(tasks):
    uid = tasks.create("feature", {}, []).uid
    barrier = threading.Barrier(8)
    results = []

    def claim():
        barrier.wait()
        results.append(tasks.claim(uid, lease_seconds=60))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    leases = [result for result in results if isinstance(result, Lease)]
    assert leases == [Lease(uid, 1)] and results.count(Claim.BUSY) == 7
    task = tasks.get(uid)
    assert (task.status, task.attempts) == ("processing", 1)


def test_lapsed_lease_can_be_reclaimed_by_a_redelivery(tasks, clock):
    uid = tasks.create("surface", {}, []).uid
    assert tasks.claim(uid, lease_seconds=60) == Lease(uid, 1)
    clock.advance(seconds=59)
    assert tasks.claim(uid, lease_seconds=60) is Claim.BUSY  # the worker is still within its lease
    assert tasks.lease_seconds_left(uid) == pytest.approx(1)
    clock.advance(seconds=2)
    assert tasks.claim(uid, lease_seconds=60) == Lease(uid, 2)  # the first worker died; the redelivery takes over
    assert tasks.claim(uid, lease_seconds=60) is Claim.BUSY  # and holds it now


def test_a_renewed_lease_is_not_taken_over(tasks, clock):
    uid = tasks.create("surface", {}, []).uid
    lease = tasks.claim(uid, lease_seconds=60)
    for _ in range(3):  # the worker is alive and heartbeats past the first expiry
        clock.advance(seconds=40)
        tasks.renew(lease, 60)
        assert tasks.claim(uid, lease_seconds=60) is Claim.BUSY
    assert tasks.get(uid).attempts == 1
    clock.advance(seconds=61)  # then it stops: its lease lapses a minute after its last heartbeat
    assert tasks.claim(uid, lease_seconds=60) == Lease(uid, 2)
    with pytest.raises(LeaseLost):
        tasks.renew(lease, 60)


def test_finished_task_is_never_claimed_again(tasks):
    uid = tasks.create("template", {}, []).uid
    lease = tasks.claim(uid, 60)
    done = tasks.complete(lease, {"matches_found": 2}, [f"results/{uid}/matches.png"])
    assert (done.status, done.result_data, done.result_files) == ("done", {"matches_found": 2}, [f"results/{uid}/matches.png"])
    assert tasks.claim(uid, 60) is Claim.FINISHED
    failed_uid = tasks.create("template", {}, []).uid
    failed = tasks.fail(tasks.claim(failed_uid, 60), "Template is larger than the image")
    assert (failed.status, failed.error) == ("error", "Template is larger than the image")


def test_unknown_task_cannot_be_claimed(tasks):
    assert tasks.claim(uuid.uuid4().hex, 60) is Claim.MISSING


def test_released_task_is_claimed_again_at_once(tasks):
    uid = tasks.create("feature", {}, []).uid
    tasks.release(tasks.claim(uid, 600))
    assert tasks.get(uid).status == "queued"
    assert tasks.claim(uid, 600) == Lease(uid, 2)
    assert tasks.get(uid).status == "processing"


def test_page_is_newest_first_with_total(tasks):
    before = tasks.page(0, 1).total
    uids = [tasks.create("template", {"n": n}, []).uid for n in range(3)]
    page = tasks.page(0, 2)
    assert page.total == before + 3
    assert [task.uid for task in page.tasks] == uids[::-1][:2]
    assert [task.uid for task in tasks.page(2, 1).tasks] == [uids[0]]


def test_thumbnail_recorded_once(tasks):
    uid = tasks.create("template", {}, []).uid
    key = f"thumbnails/{uid}/image.png"
    assert tasks.add_thumbnail(uid, key)
    assert tasks.add_thumbnail(uid, key)
    assert tasks.get(uid).thumbnails == [key]
    assert not tasks.add_thumbnail(uuid.uuid4().hex, key)


def test_a_later_delivery_of_the_job_takes_over_at_once_an_earlier_deliverys_lease(tasks):
    """The platform saw the worker of delivery 1 die and made the message visible again: delivery
    2 takes the task now, its lease running or not; the dead attempt's writes change nothing."""
    uid = tasks.create("template", {}, []).uid
    first = tasks.claim(uid, lease_seconds=60, delivery=1)
    assert first == Lease(uid, 1)
    assert tasks.claim(uid, lease_seconds=60, delivery=1) is Claim.BUSY  # the same delivery again (a duplicate)
    second = tasks.claim(uid, lease_seconds=60, delivery=2)
    assert second == Lease(uid, 2)
    assert tasks.claim(uid, lease_seconds=60, delivery=2) is Claim.BUSY  # the new holder keeps it
    with pytest.raises(LeaseLost):
        tasks.complete(first, {"late": True}, [])  # fenced
    assert tasks.complete(second, {"ok": True}, []).result_data == {"ok": True}
    assert tasks.claim(uid, lease_seconds=60, delivery=3) is Claim.FINISHED
    owner_view = tasks.timeline(uid, owner="")
    assert [(event.event, event.attempt) for event in owner_view.events] == [
        ("submitted", None),
        ("started", 1),
        ("started", 2),
        ("done", 2),
    ]
