"""The README's DynamoDB walk-through against a local endpoint (a moto server):

    python -m components.migrate.dynamodb_demo tables ENDPOINT ROWS   # two tables, a seed
    python -m components.migrate.dynamodb_demo write ENDPOINT SECONDS # the application

Only for a local endpoint: the tables are created on the URL given, with throwaway names.
"""

from __future__ import annotations

import random
import sys
import time

SOURCE, TARGET = "orders-old", "orders-new"
USAGE = ("usage: python -m components.migrate.dynamodb_demo tables ENDPOINT ROWS | "
         "write ENDPOINT SECONDS   (ENDPOINT like http://127.0.0.1:5000)")


def _client(endpoint: str) -> object:
    import boto3

    return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)


def tables(endpoint: str, rows: int) -> None:
    c: object = _client(endpoint)
    for name in (SOURCE, TARGET):
        c.create_table(  # type: ignore[attr-defined]
            TableName=name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    for i in range(rows):
        c.put_item(TableName=SOURCE,  # type: ignore[attr-defined]
                   Item={"pk": {"S": f"o{i}"}, "v": {"N": "0"}})
    print(f"{SOURCE} ({rows} items) and {TARGET} (empty), streams NEW_AND_OLD_IMAGES")


def write(endpoint: str, seconds: float, keys: int = 2200) -> None:
    """Puts, updates and deletes on the source, ~100 a second, for ``seconds``."""
    c: object = _client(endpoint)
    end, n, errors = time.monotonic() + seconds, 0, 0
    rnd = random.Random(7)
    while time.monotonic() < end:
        key, op = {"pk": {"S": f"o{rnd.randrange(keys)}"}}, rnd.random()
        try:
            if op < 0.5:
                c.put_item(TableName=SOURCE,  # type: ignore[attr-defined]
                           Item={**key, "v": {"N": str(n)}})
            elif op < 0.8:
                c.update_item(TableName=SOURCE, Key=key,  # type: ignore[attr-defined]
                              UpdateExpression="SET v = :v",
                              ExpressionAttributeValues={":v": {"N": str(n)}})
            else:
                c.delete_item(TableName=SOURCE, Key=key)  # type: ignore[attr-defined]
        except Exception as exc:  # the application's view: every error is counted and shown
            errors += 1
            print(f"write error: {exc}", file=sys.stderr)
        n += 1
        time.sleep(0.01)
    print(f"writes stopped after {n} writes ({errors} errors)")


def main(argv: list[str]) -> int:
    try:
        cmd, endpoint, amount = argv
        if cmd == "tables":
            tables(endpoint, int(amount))
        elif cmd == "write":
            write(endpoint, float(amount))
        else:
            raise ValueError(cmd)
    except ValueError:
        print(USAGE, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
