"""Delivering due occurrences to their callbacks."""
