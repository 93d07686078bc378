"""Shared domain code of the Subscriber Feedback Loop.

Domain modules take and return plain data and never import boto3; AWS access
lives in ``feedback_loop.adapters`` and is created once per cold start.
"""
