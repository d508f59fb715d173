"""AWS adapters of the run-time core: state store (DynamoDB), switchers, probes, alerts.

Clients honour ``AWS_ENDPOINT_URL`` (and per-service ``AWS_ENDPOINT_URL_<SERVICE>``) as
boto3 does, so the same code runs against AWS or a local moto server.
"""
