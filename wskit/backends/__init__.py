"""Transports on AnyIO (TCP, TLS, Unix, pre-made and MPTCP sockets).

Empty until the backends land: the sans-I/O core in :mod:`wskit.core` is
usable on its own meanwhile.
"""
