"""Benchmarks (`make perf`) are kept out of `make test`: pytest only collects tests/ by default."""
