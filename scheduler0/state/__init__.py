"""The replicated state machine: commands and the one function that applies them."""
