"""Datasets, one module per concept; :mod:`trainers.data` is the public facade."""
