"""The statistics the sequential judge is built from, one small module per test family:
``sequential`` (time-uniform boundaries), ``quantiles`` (quantiles of bucketed latency
histograms and their noise), ``counts`` (exact confidence sequences for proportions).
Pure functions over numbers: no I/O, no clock."""
