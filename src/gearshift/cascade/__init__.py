"""Cascading: answer with a cheap tier, verify the answer, escalate to a stronger tier only when it fails."""
