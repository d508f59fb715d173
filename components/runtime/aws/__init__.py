"""AWS adapters of the run-time core: state store (DynamoDB), switchers, probes, alerts.

Importing this package registers the adapter's probe and switch kinds (``kinds``).

Clients honour ``AWS_ENDPOINT_URL`` (and per-service ``AWS_ENDPOINT_URL_<SERVICE>``) as
boto3 does, so the same code runs against AWS or a local moto server.
"""

from components.runtime.aws import kinds as kinds
