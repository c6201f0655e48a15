"""Closed-loop learning without a server: exploration, off-policy evaluation, honest retraining, risk control.

Modules are imported on use; this package itself imports nothing heavy.
"""
