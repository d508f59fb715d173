"""The policy pack the Pulumi CLI runs: ``pulumi preview --policy-pack policy``."""

import sys
from pathlib import Path

# The rules share the IAM exception list with the components (pure data, no provider SDK).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policy.adapters import policies

PolicyPack(
    name="standby-topology",
    description="Invariants of an active-standby topology (pulumi-standby-topology)",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
