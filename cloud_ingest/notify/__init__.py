"""Notifications of the work-order loop: an outbox of deliveries, channels, a delivery worker.

Code that changes something calls `outbox.enqueue(...)` inside its own transaction; it records one
delivery per matching subscription and sends nothing. The `worker.DeliveryWorker` claims the due
deliveries afterwards, sends them through their channel (`channels`) and retries with backoff.
"""
