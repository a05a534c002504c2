"""Background work on dramatiq over Redis: the broker (broker.py) and the actors (actors.py).

Run a worker with `python -m workers.main` (or `python -m dramatiq workers.actors`); `make run`
starts one for you.
"""
