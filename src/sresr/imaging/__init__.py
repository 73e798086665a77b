"""Image utilities: MATLAB-exact resize (:mod:`.resize`), BT.601 colour conversion (:mod:`.color`).

This package ``__init__`` imports nothing (no torch); import the submodules you need.
"""
