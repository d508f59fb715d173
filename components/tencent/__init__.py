"""Tencent Cloud half of the topology (``cloud: tencent``), built on tencentcloud-iac-pulumi."""
