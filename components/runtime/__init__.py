"""Run-time code: what runs inside the cloud functions (monitors, switchers, wrapper, client).

Rules for this subpackage: never import ``pulumi`` (or anything from the deploy-time side of
``components``); depend only on the standard library, boto3 and small pure-Python packages
that can be zipped with it. The deploy-time side hands configuration over through the
environment variables documented in ``components/aws/monitor.py`` and ARCHITECTURE.md.
"""
