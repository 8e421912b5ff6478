"""Runnable examples; each is tested under tests/examples/."""
