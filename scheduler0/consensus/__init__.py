"""How commands reach the state machine: locally on one node, through Raft on many."""
