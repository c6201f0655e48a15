"""Integration tests: the seams between parts built separately (stores, closed loop, gateway, CLI)."""
