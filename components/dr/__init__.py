"""Disaster-recovery practice tools over a deployed stack (readiness, runbook, drills)."""
