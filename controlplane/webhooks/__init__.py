"""Webhook notifications of rollout events.

``service`` keeps the subscriptions and writes deliveries into an outbox in the caller's
transaction (:func:`~controlplane.webhooks.service.enqueue`, called by the reconciler where
it records a rollout event); ``dispatcher`` claims due deliveries with a lease and POSTs
them, signed, with retries. Only ``dispatcher`` speaks HTTP: importing this package or its
service pulls in no HTTP client.
"""
