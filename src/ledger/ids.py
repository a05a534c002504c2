"""Deterministic ids from outside keys: a duplicate command collides on the same id."""

from __future__ import annotations

from uuid import UUID, uuid5

NAMESPACE = UUID("6f1c1a3e-6f0c-4b7e-9a53-0f5b2a7c1d11")


def from_key(kind: str, key: str) -> UUID:
    return uuid5(NAMESPACE, f"{kind}:{key}")


def child(parent: UUID, part: str) -> UUID:
    """A second id derived from one command's id (its second entry, its hold...)."""
    return uuid5(parent, part)
