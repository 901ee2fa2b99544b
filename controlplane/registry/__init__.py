"""The model registry: models (named deployables with serving defaults) and their
immutable versions. Pure services over a ``Session``; no HTTP, no Kubernetes."""
