"""Tests of the benchmark harness (``bench/``), kept out of the product's unit suite.

Cheap (no service, no measurement), so CI runs them with the rest.
"""
