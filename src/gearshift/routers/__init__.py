"""Routers: score a prompt for how much it needs the strong model. They know no HTTP and no storage."""
