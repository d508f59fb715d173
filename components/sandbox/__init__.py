"""A local sandbox that stands in for cloud data planes where no emulator runs them.

moto serves the AWS control-plane APIs, but does not run Lambda code without Docker. The
sandbox hosts function handlers in-process behind the Lambda Invoke HTTP API, so boto3
clients (``AWS_ENDPOINT_URL_LAMBDA``) and the monitors' probes call them as they would on
AWS. Faults (down, slow, 5xx, function error) are switched on per function by tests and
drills.
"""
