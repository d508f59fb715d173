"""Disaster-recovery practice on a stack: the generated runbook (``standby runbook``)."""
