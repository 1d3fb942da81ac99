"""Benchmarks: `make bench` prints tables and saves plots; nothing here asserts on time."""
