"""Benchmarks (`make perf`) are kept out of `make test`: pytest only collects tests/ by default.

They run with the same process set-up as `python -m bench` (malloc keeps freed memory)."""
from bench.run import keep_freed_memory

keep_freed_memory()
