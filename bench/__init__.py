"""Throughput benchmarks of the write path: `make bench` runs `python -m bench.run`."""
