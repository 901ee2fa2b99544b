"""Canary analysis: metric providers (Prometheus over httpx) and judges that compare the
canary with stable and say pass, fail or not yet sure, and why."""
