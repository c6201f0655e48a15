"""The closed loop: request segments, adversarial routing probes, escalation SLIs and alerts, misroute bounds."""
