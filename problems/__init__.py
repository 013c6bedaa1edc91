"""Concrete control problems built on :mod:`pdecontrol` by subclassing."""
