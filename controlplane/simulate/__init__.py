"""Stand-ins for GPU inference pods: an OpenAI-compatible server with vLLM's metric names
and fault knobs (``server``), and a bounded load generator that splits traffic between a
stable and a canary URL (``load``). For the demo and the end-to-end tests; it imports
nothing else from ``controlplane`` and nothing in ``controlplane`` imports it."""
