"""The rollout state machine: strategy steps, the pure planner, and (next) the executor and
reconciler that apply its decisions through the Kubernetes driver."""
