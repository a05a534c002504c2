"""Tamper evidence: a hash chain over the notification log, sealed and verified."""
