"""The parts of the forwarding and recording benchmark, `tests/bench/bench_forwarding.py`."""
