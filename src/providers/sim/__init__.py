"""Local simulators of the providers, speaking their real wire protocols.

Each is a small ASGI app holding its state in memory; `providers.sim.app` mounts
them all on one app so one uvicorn process serves `make run` and the tests.
"""
