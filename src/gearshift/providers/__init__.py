"""Providers: wire format and auth for upstream LLM APIs. Behaviour (retries, failover) wraps them."""
