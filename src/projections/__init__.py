"""The read side: projectors turn events into plain SQL tables in schema `read`."""
