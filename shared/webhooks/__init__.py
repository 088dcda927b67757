"""Webhooks: registrations per owner, signed deliveries of task-finished events, retries with
backoff, the delivery log, and an HTTP client that only reaches public addresses.

- ``addresses``: which URLs and IP addresses a hook may reach (pure).
- ``signing``: the seed's ``X-Webhook-Signature`` and the Standard Webhooks headers (pure).
- ``retries``: the retry schedule with jitter and the auto-disable rule (pure).
- ``delivery``: one POST to one URL, pinned to the address that was checked.
- ``tables``: the ``webhooks`` and ``webhook_deliveries`` tables.
- ``hooks_repository``: the owners' hooks in the database; ``repository``: those and their
  deliveries, each delivery taken with the platform's fenced lease (shared/platform/leases.py);
  ``service``: the API's operations; ``notifier``: task-finished events and due retries.
"""
