"""Aggregates: small, per owner, free of infrastructure."""
