"""``python -m components.sandbox --stack aws-dev``: a local stand-in for a deployed stack.

Starts a moto server and the function host, then creates what ``pulumi up`` would leave for
the logic (wrapper pointer) and data layers, with the exact names and monitor environments
the offline plan of the stack computes: the state table, a pointer table per region, the
data layer's DynamoDB table and buckets, the wrapper functions (hosted, healthy) and the
logic and data monitors' functions (configuration only; moto keeps their environment).
Then it prints the variables to export and waits until Ctrl-C.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3


def seed(stack: str, project_dir: Path, moto_url: str, host: Any) -> list[str]:
    from components.plan.run import read_stack, run_program
    from components.program import main

    run = run_program(read_stack(stack, project_dir), main)
    made: list[str] = []

    def client(service: str, region: str) -> Any:
        make: Any = boto3.client  # service is a runtime string
        return make(service, region_name=region, endpoint_url=moto_url)

    role = client("iam", "us-east-1").create_role(
        RoleName="standby-sandbox", AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": []}))["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("placeholder.py", "")
    for r in run.resources:
        region = r.region or "us-east-1"
        if r.type == "aws:dynamodb/table:Table":
            keys = [{"AttributeName": r.inputs["hashKey"], "KeyType": "HASH"}]
            if r.inputs.get("rangeKey"):
                keys.append({"AttributeName": r.inputs["rangeKey"], "KeyType": "RANGE"})
            attrs = [{"AttributeName": a["name"], "AttributeType": a["type"]}
                     for a in r.inputs["attributes"]]
            regions = [region] + [x["regionName"] for x in r.inputs.get("replicas") or []]
            for reg in regions:
                client("dynamodb", reg).create_table(
                    TableName=r.inputs["name"], BillingMode="PAY_PER_REQUEST", KeySchema=keys,
                    AttributeDefinitions=attrs)
                made.append(f"dynamodb {reg} {r.inputs['name']}")
        elif r.type == "aws:dynamodb/tableItem:TableItem":
            client("dynamodb", region).put_item(TableName=r.inputs["tableName"],
                                                Item=json.loads(r.inputs["item"]))
        elif r.type == "aws:s3/bucket:Bucket":
            bucket = r.outputs["bucket"]
            kwargs: dict[str, Any] = {}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            client("s3", region).create_bucket(Bucket=bucket, **kwargs)
            made.append(f"s3 {region} {bucket}")
        elif r.type == "aws:sns/topic:Topic":
            client("sns", region).create_topic(Name=r.inputs["name"])
            made.append(f"sns {region} {r.inputs['name']}")
        elif r.type == "aws:lambda/function:Function":
            name = r.inputs["name"]
            variables = {k: str(v) for k, v in r.inputs["environment"]["variables"].items()}
            layer = variables.get("STANDBY_LAYER")
            if "-wrap-" in name:
                host.register(name, lambda event, ctx: {"ok": True})
                made.append(f"function (hosted) {region} {name}")
            elif layer in ("logic", "data"):
                client("lambda", region).create_function(
                    FunctionName=name, Runtime=r.inputs["runtime"], Role=role,
                    Handler=r.inputs["handler"], Code={"ZipFile": buf.getvalue()},
                    Environment={"Variables": variables})
                made.append(f"monitor {region} {name}")
    return made


def main(argv: list[str] | None = None) -> int:
    from moto.server import ThreadedMotoServer

    from components.plan.run import find_project_dir
    from components.sandbox.functions import FunctionHost

    p = argparse.ArgumentParser(prog="python -m components.sandbox",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--stack", required=True)
    p.add_argument("--port", type=int, default=5000, help="moto server port (default 5000)")
    p.add_argument("--project-dir", type=Path, default=None)
    args = p.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "sandbox")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "sandbox")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    moto_url = f"http://127.0.0.1:{args.port}"
    host = FunctionHost(fallback=moto_url)
    try:
        made = seed(args.stack, (args.project_dir or find_project_dir(Path.cwd())).resolve(),
                    moto_url, host)
        print(f"sandbox for stack {args.stack}: {len(made)} resources")
        for line in made:
            print(f"  {line}")
        print("\nIn another shell:")
        print("  export AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox")
        print(f"  export AWS_ENDPOINT_URL_LAMBDA={host.url}")
        print(f"  standby status --stack {args.stack} --endpoint-url {moto_url}")
        sys.stdout.flush()
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        host.close()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
