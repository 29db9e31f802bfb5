"""The HTTP API served by every node."""
