"""Use the topology from your own Pulumi program (run it with `pulumi up` as usual).

    pip install pulumi-standby-topology
    # in your program's __main__.py:
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components import ActiveStandbyTopology, parse_spec

spec = parse_spec(
    {
        "name": "orders",
        "cloud": "aws",
        "regions": [{"name": "eu-west-1", "role": "primary"},
                    {"name": "eu-central-1", "role": "standby"}],
        "dns": {"zone": "example.org", "record": "orders", "ttl_s": 30},
        "logic": {"code": "app", "handler": "main.handler"},
        "targets": {"rto_s": 240, "rpo_s": 5},
    }
)

# Providers are yours: credentials, assume-role and default tags stay under your control.
providers = {
    region: aws.Provider(f"aws-{region}", region=region) for region in spec.all_regions
}
topology = ActiveStandbyTopology(
    "orders",
    spec,
    providers,
    dns_provider=aws.Provider("aws-route53", region="us-east-1"),
)
pulumi.export("url", topology.public_url)
pulumi.export("monitors", topology.monitors)
pulumi.export("dashboard", topology.dashboard_url)
