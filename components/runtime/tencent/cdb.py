"""CDB instance look-ups shared by the DR switch, the SQL probe and the wrapper.

A DR instance made by ``mysql.DrInstance`` has no address output at deploy time, so the run
time asks ``DescribeDBInstances`` (CDB API 2017-03-20) for the instance's private address
(``Vip``/``Vport``) when it needs it.
"""

from __future__ import annotations

from typing import Any

from components.runtime.errors import SwitchError
from components.runtime.tencent.client import TencentApi

CDB = ("cdb", "2017-03-20")


def describe_instance(api: TencentApi, region: str, instance_id: str) -> dict[str, Any]:
    out = api.call(*CDB, region, "DescribeDBInstances", {"InstanceIds": [instance_id]})
    for item in out.get("Items") or []:
        if item.get("InstanceId") == instance_id:
            return dict(item)
    raise SwitchError(f"CDB instance {instance_id} not found in {region}")


def address(api: TencentApi, region: str, instance_id: str) -> tuple[str, int]:
    """The instance's private address; ``SwitchError`` when it has none yet."""
    item = describe_instance(api, region, instance_id)
    vip, vport = item.get("Vip"), item.get("Vport")
    if not vip or not vport:
        raise SwitchError(f"CDB instance {instance_id} in {region} has no private address "
                          f"yet (Vip {vip!r}, Vport {vport!r})")
    return str(vip), int(vport)
