"""The topology spec: valid examples, exact error messages, and generated configs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.errors import SpecError
from components.spec import TopologySpec, parse_spec
from tests.conftest import EXAMPLE_STACKS, example_raw, minimal_raw


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_example_stacks_are_valid(stack: str) -> None:
    spec = parse_spec(example_raw(stack))
    assert len(spec.all_regions) >= 2
    for group in spec.region_groups:
        assert group.primary != group.standby


def test_simple_mode_becomes_one_group_on_the_default_line() -> None:
    spec = parse_spec(minimal_raw())
    [group] = spec.region_groups
    assert (group.name, group.primary, group.standby, group.lines) == (
        "main", "us-east-1", "us-west-2", ["default"])
    assert spec.db_engine == "dynamodb" and spec.gateway_kind == "rest"
    assert spec.runtime == "python3.12"
    assert spec.domain == "api.example.com"


def test_monitor_defaults_are_inherited_and_layer_values_win() -> None:
    raw = minimal_raw()
    raw["monitor"] = {"defaults": {"failure_threshold": 5, "cooldown_s": 60},
                      "data": {"cooldown_s": 1800}}
    spec = parse_spec(raw)
    assert spec.monitor.gateway.failure_threshold == 5
    assert spec.monitor.gateway.cooldown_s == 60
    assert spec.monitor.data.cooldown_s == 1800
    assert spec.monitor.data.failure_threshold == 5


def test_region_overrides_deep_merge() -> None:
    raw = minimal_raw()
    raw["logic"]["env"] = {"A": "1", "B": "2"}
    raw["overrides"] = {"us-west-2": {"logic": {"memory_mb": 512, "env": {"B": "west"}},
                                      "monitor": {"gateway": {"failure_threshold": 5}}}}
    spec = parse_spec(raw)
    west = spec.for_region("us-west-2")
    east = spec.for_region("us-east-1")
    assert west.logic.memory_mb == 512 and east.logic.memory_mb == 256
    assert west.logic.env == {"A": "1", "B": "west"}
    assert west.monitor.gateway.failure_threshold == 5
    assert east.monitor.gateway.failure_threshold == 3
    assert west.logic.handler == east.logic.handler


def test_built_directly_in_python() -> None:
    spec = TopologySpec.model_validate(minimal_raw())
    assert spec.name == "shop"


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    cur = raw
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


BAD_CASES = [
    ("monitor.dns.failure_threshold", 0, "monitor.dns.failure_threshold: 0 is not in 1..10"),
    ("monitor.gateway.failure_threshold", 11, "monitor.gateway.failure_threshold: 11 is not in 1..10"),  # noqa: E501
    ("cloud", "gcp", "cloud: 'gcp' is not allowed; allowed: aws, tencent"),
    ("monitor.logic.failback", "sometimes", "monitor.logic.failback: 'sometimes' is not allowed; allowed: auto, manual"),  # noqa: E501
    ("monitor.dns.failure_treshold", 3, "monitor.dns: unknown key 'failure_treshold' (did you mean 'failure_threshold'?)"),  # noqa: E501
    ("dns.zone", "Example..com", "dns.zone: 'Example..com' is not a lowercase DNS name like api.example.com"),  # noqa: E501
    ("logic.memory_mb", 64, "logic.memory_mb: 64 is not in 128..10240"),
    ("logic.memory_mb", "256", "logic.memory_mb: '256' is not an integer"),
    ("logic.runtime", "python2.7", "logic.runtime: 'python2.7' is not available on aws; allowed: python3.10"),  # noqa: E501
    ("database.engine", "oracle", "database.engine: 'oracle' is not available on aws; allowed: dynamodb, postgres, mysql"),  # noqa: E501
    ("monitor.dns.interval_s", 15, "monitor.dns.interval_s: 15 is not allowed with dns.mode health_check (Route 53 health checks); allowed: 10, 30"),  # noqa: E501
    ("monitor.gateway.quorum", 3, "monitor.gateway.quorum: 3 is more than the 2 vantage points"),
    ("alerting.webhooks", [{"kind": "slack", "url": "https://hooks.slack.com/x"}], "alerting.webhooks[0].url: plaintext secrets are not allowed"),  # noqa: E501
    ("alerting.webhooks", [{"kind": "slack", "url": {"secure": "v1:abc"}}], "alerting.webhooks[0].url: a secure value inside the topology object"),  # noqa: E501
    ("alerting.sms", ["13800000000"], "alerting.sms[0]: '13800000000' is not a phone number in E.164 form"),  # noqa: E501
    ("logic.env", {"DB_PASSWORD": "hunter2"}, "logic.env.DB_PASSWORD: looks like a secret in plaintext"),  # noqa: E501
    ("targets.rto_s", 0, "targets.rto_s: 0 is not in 1..86400"),
    ("overrides", {"eu-west-9": {}}, "overrides.eu-west-9: 'eu-west-9' is not a region of this topology; allowed: us-east-1, us-west-2"),  # noqa: E501
    ("overrides", {"us-west-2": {"logic": {"memory_mb": 1}}}, "overrides.us-west-2.logic.memory_mb: 1 is not in 128..10240"),  # noqa: E501
    ("overrides", {"us-west-2": {"dns": {}}}, "overrides.us-west-2: unknown key 'dns'"),
    ("database.engine", "postgres", "database.network.us-east-1: required for engine 'postgres'"),
    ("dns.mode", "sometimes", "dns.mode: 'sometimes' is not allowed; allowed: health_check, direct"),  # noqa: E501
    ("logic.code", "/", "logic.code: '/' is not a folder inside the project; allowed: a relative path without '..'"),  # noqa: E501
    ("logic.code", "app/../../..", "logic.code: 'app/../../..' is not a folder inside the project"),
    ("logic.env", {"BIG": "x" * 5_000_000}, "logic.env: the function environment in us-east-1 is about 5000"),  # noqa: E501
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_CASES, ids=[c[2][:40] for c in BAD_CASES])  # noqa: E501
def test_bad_value_names_path_value_and_allowed(path: str, value: Any, message: str) -> None:
    raw = minimal_raw()
    _set(raw, path, value)
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert any(str(p).startswith(message) for p in info.value.problems), info.value.problems


def test_standby_equal_to_primary() -> None:
    raw = minimal_raw()
    raw["regions"][1]["name"] = "us-east-1"
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert [str(p) for p in info.value.problems] == [
        "regions[1].name: 'us-east-1': standby region must differ from the primary region"]


def test_missing_required_and_both_modes() -> None:
    raw = minimal_raw()
    del raw["targets"]
    with pytest.raises(SpecError, match=r"targets: is required but missing"):
        parse_spec(raw)
    raw = minimal_raw()
    raw["groups"] = [{"name": "alpha", "primary": "us-east-1", "standby": "us-west-2",
                      "lines": ["default"]}]
    with pytest.raises(SpecError, match=r"regions: give exactly one of `regions`"):
        parse_spec(raw)


def test_nearby_groups_rules() -> None:
    raw = minimal_raw()
    del raw["regions"]
    raw["groups"] = [
        {"name": "alpha", "primary": "us-east-1", "standby": "us-west-2", "lines": ["latency"]},
        {"name": "beta", "primary": "eu-west-1", "standby": "eu-central-1", "lines": ["geo:EU"]},
    ]
    with pytest.raises(SpecError, match="either every group uses the 'latency' line"):
        parse_spec(raw)
    raw["groups"][1]["lines"] = ["geo:XX"]
    with pytest.raises(SpecError, match=r"groups\[1\].lines\[0\]: 'geo:XX' is not a aws DNS line"):
        parse_spec(raw)


def test_tencent_lines_and_modes() -> None:
    raw = minimal_raw()
    raw["cloud"] = "tencent"
    del raw["regions"]
    raw["groups"] = [
        {"name": "south", "primary": "ap-guangzhou", "standby": "ap-shanghai",
         "lines": ["默认", "电信"]},
        {"name": "east", "primary": "ap-shanghai", "standby": "ap-guangzhou", "lines": ["联通"]},
    ]
    raw["dns"].update(mode="direct", ttl_s=600)
    raw["tencent"] = TENCENT_ACCOUNT
    raw["database"] = {"network": _tencent_network("ap-guangzhou", "ap-shanghai")}
    spec = parse_spec(raw)
    assert spec.gateway_kind == "scf_domain" and spec.db_engine == "mysql"
    raw["dns"]["mode"] = "health_check"
    with pytest.raises(SpecError, match=r"dns\.mode: 'health_check' is not available on tencent"):
        parse_spec(raw)


def _tencent_network(*regions: str) -> dict[str, Any]:
    return {r: {"vpc_id": "vpc-1", "subnet_ids": ["subnet-1", "subnet-2"]} for r in regions}


TENCENT_ACCOUNT = {"app_id": "1250000000", "owner_uin": "100000000001"}
TENCENT_STACKS = ("tencent-dev", "tencent-nearby")


def _tencent_raw() -> dict[str, Any]:
    raw = minimal_raw()
    raw.update(cloud="tencent", tencent=dict(TENCENT_ACCOUNT),
               regions=[{"name": "ap-guangzhou", "role": "primary"},
                        {"name": "ap-shanghai", "role": "standby"}])
    raw["dns"].update(mode="direct", ttl_s=600)
    raw["database"] = {"network": _tencent_network("ap-guangzhou", "ap-shanghai")}
    return raw


@pytest.mark.parametrize("stack", TENCENT_STACKS)
def test_tencent_example_stacks_are_valid(stack: str) -> None:
    spec = parse_spec(example_raw(stack))
    assert spec.cloud == "tencent" and spec.db_engine == "mysql"
    assert all(g.primary != g.standby for g in spec.region_groups)


def test_tencent_nearby_groups_route_every_line_once() -> None:
    spec = parse_spec(example_raw("tencent-nearby"))
    lines = [line for g in spec.region_groups for line in g.lines]
    assert sorted(lines) == sorted(["默认", "电信", "联通", "移动", "教育网", "境外"])
    assert {g.name: (g.primary, g.standby) for g in spec.region_groups} == {
        "huabei": ("ap-beijing", "ap-shanghai"), "huanan": ("ap-guangzhou", "ap-shanghai")}


def test_tencent_ttl_below_the_dnspod_free_plan_minimum_is_refused() -> None:
    raw = _tencent_raw()
    raw["dns"]["ttl_s"] = 60
    with pytest.raises(SpecError, match=r"dns\.ttl_s: 60 is below 600 s, the DNSPod free "
                       r"plan's minimum \(set dns\.min_ttl_s"):
        parse_spec(raw)
    raw["dns"]["min_ttl_s"] = 60
    assert parse_spec(raw).dns_min_ttl_s == 60
    raw["dns"]["min_ttl_s"] = 120
    with pytest.raises(SpecError, match=r"dns\.ttl_s: 60 is below 120 s, dns\.min_ttl_s"):
        parse_spec(raw)


def test_dnspod_min_ttl_is_refused_on_aws() -> None:
    raw = minimal_raw()
    raw["dns"]["min_ttl_s"] = 60
    with pytest.raises(SpecError, match=r"dns\.min_ttl_s: applies to DNSPod only"):
        parse_spec(raw)


def test_tencent_needs_the_account() -> None:
    raw = _tencent_raw()
    del raw["tencent"]
    with pytest.raises(SpecError, match=r"tencent: required with cloud: tencent"):
        parse_spec(raw)
    raw["tencent"] = {"app_id": "12", "owner_uin": "100000000001"}
    with pytest.raises(SpecError, match=r"tencent\.app_id: '12' is not a 10-digit Tencent APPID"):
        parse_spec(raw)


def test_tencent_postgres_cross_region_is_refused_with_the_reason() -> None:
    raw = _tencent_raw()
    raw["database"]["engine"] = "postgres"
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    [problem] = [p for p in info.value.problems if p.path == "database.engine"]
    assert "no API that promotes a PostgreSQL replica in another region" in problem.reason
    assert "allowed: engine mysql" in problem.reason
    raw["database"]["replica"] = False
    assert parse_spec(raw).db_engine == "postgres"


def test_tencent_mysql_needs_a_network_per_region() -> None:
    raw = _tencent_raw()
    raw["database"] = {"engine": "mysql"}
    with pytest.raises(SpecError, match=r"database\.network\.ap-guangzhou: required for engine "
                       r"'mysql'"):
        parse_spec(raw)


def test_every_problem_is_reported_at_once() -> None:
    raw = minimal_raw()
    raw["monitor"] = {"dns": {"failure_threshold": 0}, "gateway": {"recovery_threshold": 99}}
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    paths = {p.path for p in info.value.problems}
    assert {"monitor.dns.failure_threshold", "monitor.gateway.recovery_threshold"} <= paths


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="expected a mapping, got list"):
        parse_spec([1, 2])


# -- generated configs: either valid, or only the documented error -------------------------

_PATHS = [
    "monitor.dns.failure_threshold", "monitor.gateway.interval_s", "monitor.data.quorum",
    "monitor.logic.timeout_s", "monitor.defaults.cooldown_s", "dns.ttl_s", "dns.mode",
    "logic.memory_mb", "logic.timeout_s", "wrapper.pointer_cache_s", "database.engine",
    "database.max_lag_s", "storage.rtc", "targets.rto_s", "targets.rpo_s", "cloud", "name",
    "gateway.kind", "monitor.dns.failback", "logic.handler",
]
_VALUES = st.one_of(
    st.integers(-5, 100_000), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.booleans(), st.none(),
    st.sampled_from(["aws", "tencent", "auto", "manual", "direct", "health_check", "rest",
                     "dynamodb", "postgres", "main.handler"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),  # noqa: E501
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_PATHS), _VALUES), min_size=1, max_size=4))
def test_generated_configs_validate_or_raise_spec_error(edits: list[tuple[str, Any]]) -> None:
    raw = copy.deepcopy(minimal_raw())
    for path, value in edits:
        _set(raw, path, value)
    try:
        spec = parse_spec(raw)
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.reason
            top = problem.path.split(".")[0].split("[")[0]
            assert top in TopologySpec.model_fields, problem  # names a real config path
        return
    # A valid spec is internally consistent.
    assert spec.monitor.dns.failure_threshold in range(1, 11)
    assert 1 <= spec.targets.rto_s <= 86400


# --- regression tests: settings main accepted (review.md "Deploy time", "Run-time protocol")

ARN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:shop/slack-AbC123"
SQL_NETWORK = {r: {"vpc_id": f"vpc-{r}", "subnet_ids": ["subnet-a", "subnet-b"]}
               for r in ("us-east-1", "us-west-2")}


def _problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(("key", "value"), [("quorum", 1), ("interval_s", 30),
                                            ("cooldown_s", 0), ("failback", "auto"),
                                            ("timeout_s", 5.0)])
def test_override_cannot_give_one_region_its_own_quorum_or_timing(key: str, value: Any) -> None:
    """`overrides.<region>.monitor.data.quorum: 1` let one region's monitor fail over alone."""
    raw = minimal_raw()
    raw["overrides"] = {"us-west-2": {"monitor": {"data": {key: value}}}}
    base = parse_spec(minimal_raw()).monitor.data
    [problem] = _problems(raw)
    assert problem.startswith(
        f"overrides.us-west-2.monitor.data.{key}: {value!r} differs from monitor.data.{key} "
        f"({getattr(base, key)!r})")
    assert f"allowed: {getattr(base, key)!r}" in problem


def test_override_may_still_change_one_regions_threshold() -> None:
    raw = minimal_raw()
    raw["overrides"] = {"us-west-2": {"monitor": {"data": {"failure_threshold": 5}}}}
    assert parse_spec(raw).for_region("us-west-2").monitor.data.failure_threshold == 5


def test_auto_failback_with_quorum_1_and_no_cooldown_is_refused_as_flapping() -> None:
    """quorum 1 + cooldown_s 0 + failback auto flipped a scope back and forth in one round."""
    raw = minimal_raw()
    raw["monitor"] = {"logic": {"quorum": 1, "cooldown_s": 0, "failback": "auto"}}
    problems = _problems(raw)
    assert any(p.startswith("monitor.logic.quorum: 1 with failback auto") and
               "allowed with failback auto: quorum 2 (or failback: manual)" in p
               for p in problems), problems
    assert any(p.startswith("monitor.logic.cooldown_s: 0 with failback auto") and
               "allowed with failback auto: at least 60 (or failback: manual)" in p
               for p in problems), problems


def test_auto_failback_that_cannot_flap_is_accepted() -> None:
    raw = minimal_raw()
    raw["monitor"] = {"defaults": {"failback": "auto", "quorum": 2, "cooldown_s": 60}}
    assert parse_spec(raw).monitor.gateway.failback == "auto"
    raw["monitor"] = {"defaults": {"failback": "manual", "quorum": 1, "cooldown_s": 0}}
    assert parse_spec(raw).monitor.gateway.quorum == 1  # manual failback cannot flap


@pytest.mark.parametrize("value", ["shop/slack", "arn:aws:secretsmanager:us-west-2:1234:secret:x",
                                   "arn:aws:s3:::bucket", ARN + " "])
def test_secret_store_name_is_refused_an_arn_is_required(value: str) -> None:
    """`secret_store: NAME` went verbatim into IAM Resource (MalformedPolicyDocument)."""
    raw = minimal_raw()
    raw["alerting"] = {"webhooks": [{"kind": "slack", "url": {"secret_store": value}}]}
    raw["logic"]["secret_env"] = {"API_KEY": {"secret_store": value}}
    problems = _problems(raw)
    for path in ("alerting.webhooks[0].url.secret_store", "logic.secret_env.API_KEY.secret_store"):
        assert any(p.startswith(f"{path}: {value!r} is not the secret's full ARN, "
                                "arn:aws:secretsmanager:<region>:<account>:secret:<name>-")
                   for p in problems), (path, problems)


def test_secret_store_full_arn_is_accepted() -> None:
    raw = minimal_raw()
    raw["alerting"] = {"webhooks": [{"kind": "slack", "url": {"secret_store": ARN}}]}
    assert parse_spec(raw).alerting.webhooks[0].url.secret_store == ARN


def test_bucket_prefix_longer_than_36_is_refused() -> None:
    """40 characters passed the spec, but pulumi-aws bucket_prefix allows 37 (with '-')."""
    raw = minimal_raw()
    raw["storage"] = {"bucket": "b" * 37}
    assert _problems(raw) == [
        f"storage.bucket: {'b' * 37!r} is not 3-36 lowercase letters, digits or '-'"]
    raw["storage"] = {"bucket": "b" * 36}
    assert parse_spec(raw).storage.bucket == "b" * 36
    raw["storage"] = {"bucket": "xn--shop"}
    assert _problems(raw) == ["storage.bucket: 'xn--shop' starts with 'xn--', which S3 "
                              "reserves; allowed: any other prefix"]


@pytest.mark.parametrize(("name", "db", "why"), [
    ("shop", "a" * 60, "is 73 characters; RDS allows 63"),
    ("shop", "orders_", "contains '--'"),
    ("shop", "my__db", "contains '--'"),
])
def test_rds_identifier_from_name_and_db_name_is_checked(name: str, db: str, why: str) -> None:
    """RDS identifiers built from name + database.name had no length or '--' check."""
    raw = minimal_raw()
    raw["name"] = name
    raw["database"] = {"engine": "postgres", "name": db, "network": SQL_NETWORK}
    [problem] = _problems(raw)
    assert problem.startswith(f"database.name: {db!r} makes the RDS identifier ")
    assert why in problem and "allowed: a shorter name" in problem
    raw["database"]["engine"] = "dynamodb"  # DynamoDB table names have no such rule
    assert parse_spec(raw).database.name == db


def test_logic_env_over_the_4kb_function_limit_is_refused() -> None:
    """A 5 MB (or 4,000-byte) env value was accepted; Lambda allows 4 KB in aggregate."""
    raw = minimal_raw()
    raw["logic"]["env"] = {"BIG": "x" * 3000}
    assert parse_spec(raw).logic.env["BIG"] == "x" * 3000  # with the program's keys: < 4 KB
    raw["logic"]["env"] = {"BIG": "x" * 4000}
    problems = _problems(raw)
    assert len(problems) == 1 and problems[0].startswith(
        "logic.env: the function environment in us-east-1 is about ")
    assert "aws allows 4096 bytes in total" in problems[0]


def test_logic_env_size_counts_overrides_and_secret_arns() -> None:
    raw = minimal_raw()
    raw["logic"]["env"] = {"MID": "x" * 3400}
    assert parse_spec(raw).logic.env["MID"] == "x" * 3400
    # each created secret's <KEY>_SECRET_ARN is counted at its longest (about 150 bytes)
    raw["logic"]["secret_env"] = {f"K{i}": {"config": f"k{i}"} for i in range(4)}
    assert any(p.startswith("logic.env: the function environment in us-east-1")
               for p in _problems(raw))
    raw = minimal_raw()
    raw["overrides"] = {"us-west-2": {"logic": {"env": {"BIG": "y" * 4000}}}}
    assert any(p.startswith("overrides.us-west-2.logic.env: the function environment in "
                            "us-west-2") for p in _problems(raw))


@pytest.mark.parametrize("key", ["STANDBY_REGION", "AWS_REGION", "_HANDLER", "LAMBDA_TASK_ROOT"])
def test_env_keys_the_program_or_lambda_sets_are_refused(key: str) -> None:
    raw = minimal_raw()
    raw["logic"]["env"] = {key: "x"}
    assert any(p.startswith(f"logic.env.{key}: is set by the program or reserved")
               for p in _problems(raw))
