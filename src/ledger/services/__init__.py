"""Application services: one method per command, each one atomic save via the runner."""
