"""gearshift: route LLM traffic between cheap and strong models, and keep the routing honest."""

__version__ = "0.1.0"
