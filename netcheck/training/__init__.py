"""The trainer built on the manual gradient, and its checkpoints.

Named ``training`` (not ``train``), so that it never shadows the function ``netcheck.train``.
"""
