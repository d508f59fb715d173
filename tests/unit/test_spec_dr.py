"""The optional ``dr`` section: contacts, roles, the data-loss approver, exercise cadence."""

from __future__ import annotations

from typing import Any

import pytest

from components.errors import SpecError
from components.spec import parse_spec
from tests.conftest import example_raw, minimal_raw


def problems(dr: Any) -> list[str]:
    with pytest.raises(SpecError) as err:
        parse_spec({**minimal_raw(), "dr": dr})
    return [str(p) for p in err.value.problems]


def test_dr_is_optional_and_defaults_to_no_contacts() -> None:
    spec = parse_spec(minimal_raw())
    assert spec.dr.contacts == []
    assert spec.dr.data_loss_approver == "incident_commander"
    assert spec.dr.exercise_every_days == 90


def test_aws_dev_example_names_every_role() -> None:
    spec = parse_spec(example_raw("aws-dev"))
    assert {c.role for c in spec.dr.contacts} == {
        "incident_commander", "operator", "database_owner", "communications"}


@pytest.mark.parametrize(("dr", "expected"), [
    ({"contacts": [{"name": "A", "role": "incident_commander"}]},
     "dr.contacts[0]: give at least one of `email` or `phone`"),
    ({"contacts": [{"name": "A", "role": "boss", "email": "a@example.com"}]},
     "dr.contacts[0].role: 'boss' is not allowed; allowed: incident_commander, operator, "
     "database_owner, communications"),
    ({"contacts": [{"name": "A", "role": "incident_commander", "phone": "555-0100"}]},
     "dr.contacts[0].phone: '555-0100' is not a phone number in E.164 form"),
    ({"contacts": [{"name": "<b>A</b>", "role": "incident_commander", "email": "a@x.io"}]},
     "dr.contacts[0].name: '<b>A</b>' is not 1-80 printable characters without < > | or `"),
    ({"contacts": [{"name": "A", "role": "operator", "email": "a@example.com"}]},
     "dr.contacts: no contact has role 'incident_commander'"),
    ({"contacts": [{"name": "A", "role": "incident_commander", "email": "a@example.com"}],
      "data_loss_approver": "database_owner"},
     "dr.contacts: no contact has role 'database_owner'"),
    ({"contacts": [{"name": "A", "role": "incident_commander", "email": "a@example.com"},
                   {"name": "a ", "role": "operator", "email": "b@example.com"}]},
     "dr.contacts[1].name: 'a ' is already contacts[0]; allowed: one entry per person"),
    ({"exercise_every_days": 3}, "dr.exercise_every_days: 3 is not in 7..366"),
    ({"contacs": []}, "dr: unknown key 'contacs' (did you mean 'contacts'?)"),
])
def test_bad_dr_is_refused_naming_path_and_what_is_allowed(dr: Any, expected: str) -> None:
    found = problems(dr)
    assert any(p.startswith(expected) for p in found), found
