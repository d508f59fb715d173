"""A local sandbox that stands in for the cloud where no emulator runs it.

``python -m components.sandbox --stack NAME`` deploys a stack's plan into a moto server with
IAM enforced (``deploy.py``, ``moto_proc.py``), runs each function from its registered
archive in a fresh interpreter with its own role's credentials (``lambda_runner.py``), fires
the monitors as their schedules say (``schedule.py``) and evaluates alarms as CloudWatch and
Route 53 do (``alarms.py``). ``functions.py`` serves the Lambda Invoke API locally, with
fault injection; ``edge.py`` stands in for the API Gateway and Route 53 data planes. The
drill (``drill_deployed.py``, ``make demo``) runs on that deployed world
(``drill_deployed_world.py``); nothing in it is wired by hand.
"""
