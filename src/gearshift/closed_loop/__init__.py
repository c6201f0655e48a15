"""The closed loop at runtime: request segments, the shadow judge, signals, escalation SLIs and alerts.

The offline tools it feeds live elsewhere: routing probes and perturbations in evaluation/, topic fitting
beside the embedders in routers/topics.py, misroute bounds in learning/.
"""
