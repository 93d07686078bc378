"""AWS adapters: the only modules of the package that talk to boto3.

Clients and settings are created lazily, once per cold start, so importing a
handler has no side effects and tests can swap them.
"""
