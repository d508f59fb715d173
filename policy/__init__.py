"""The policy pack (pulumi-policy): invariants of an active-standby topology.

``rules`` holds the rules as plain functions, ``adapters`` turns them into pulumi-policy
policies, and ``__main__`` is the pack the Pulumi CLI runs:
``pulumi preview --policy-pack policy``.
"""
