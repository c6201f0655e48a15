"""Offline evaluation of routers on recorded model outcomes: metrics, slices, protocols, reports."""
