"""Recorded model outcomes: the canonical format, loaders for public datasets, fetching."""
