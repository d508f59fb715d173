"""Example logic function: answers the deep-health path and echoes everything else.

Replace this folder with your own code (``logic.code`` in the stack config).
"""

import json
from typing import Any


def handler(event: dict[str, Any] | None, context: object) -> dict[str, Any]:
    path = (event or {}).get("path") or (event or {}).get("rawPath") or "/"
    if path.endswith("/health"):
        return {"statusCode": 200, "body": json.dumps({"ok": True})}
    return {"statusCode": 200, "body": json.dumps({"path": path})}
