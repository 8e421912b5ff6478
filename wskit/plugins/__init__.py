"""Policy plugins (auth, Origin checks, rate limits, broadcast, resume).

Empty until the plugin hook API lands with the server.
"""
