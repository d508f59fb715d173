"""IAM rules shared by the components (deploy time) and the policy pack.

Pure data, no ``pulumi`` import: the policy pack imports this without the provider SDK.
"""

from __future__ import annotations

#: Actions AWS only authorises on Resource "*"; each with the reason and the narrowing we use.
WILDCARD_EXCEPTIONS: dict[str, str] = {
    "cloudwatch:PutMetricData": (
        "no resource-level permissions exist; narrowed by the cloudwatch:namespace condition"
    ),
    "ec2:CreateNetworkInterface": (
        "Lambda VPC attachment: ENIs are created before their ARN exists (same as the "
        "AWSLambdaVPCAccessExecutionRole managed policy)"
    ),
    "ec2:DescribeNetworkInterfaces": "Describe* calls support no resource-level permissions",
    "ec2:DeleteNetworkInterface": "Lambda VPC attachment (see ec2:CreateNetworkInterface)",
    "ec2:AssignPrivateIpAddresses": "Lambda VPC attachment (see ec2:CreateNetworkInterface)",
    "ec2:UnassignPrivateIpAddresses": "Lambda VPC attachment (see ec2:CreateNetworkInterface)",
}
