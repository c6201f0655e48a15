"""Tier choice end to end: thresholds, rules and category routes, exploration and misroute arms, conversation
stickiness, context fit and the strong-share cap. Knows no HTTP and no storage; the gateway asks it once per
request and records what it says."""
