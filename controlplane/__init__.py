"""A deployment control plane for fine-tuned LLMs on Kubernetes.

The package records model versions, drives staged canary rollouts of GPU inference pods,
judges canaries against stable from Prometheus, and promotes or rolls back by itself.
"""

__version__ = "0.1.0"
