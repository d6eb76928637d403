"""Auditor trust: verify the chain, signed checkpoints, export, reconcile against a statement."""
