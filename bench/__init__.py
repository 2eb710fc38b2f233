"""regbench: measure what deep-learning regularizers really buy."""
