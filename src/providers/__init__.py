"""Clients and local simulators for the payment and messaging providers we do not own.

Each client speaks the provider's real wire protocol (signatures included) at a
base URL given by the caller, so tests and `make run` point at the simulators in
`providers.sim` and production points at the real gateways.
"""
