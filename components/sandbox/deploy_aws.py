"""One handler per resource type: create the registered resource in moto with the plan's
names and inputs (already rewritten to moto's identifiers by ``Deployment.fix``), and record
the identifiers moto gave it. A type without a handler is reported by ``deploy.py``."""

from __future__ import annotations

import json
from typing import Any

from components.plan.mocks import Registration, _hex
from components.sandbox.deploy_iam import policy_for_moto, trust_for_sandbox
from components.sandbox.deploy_model import (
    SECRET_PLACEHOLDER,
    Created,
    Deployment,
    Function,
    Schedule,
    _int,
    _tags,
    handles,
    plan_id,
)
from components.sandbox.drivers import runnable_layer
from components.sandbox.package import zip_bytes

# -- IAM ----------------------------------------------------------------------------------

@handles("aws:iam/role:Role")
def _role(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    name = str(i.get("name") or r.outputs["name"])
    d.client("iam", region).create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(
            trust_for_sandbox(json.loads(i["assumeRolePolicy"]), d.deployer_arn)),
        Description=str(i.get("description", "")))
    d.map(plan_id(r), name)
    return name



@handles("aws:iam/rolePolicy:RolePolicy")
def _role_policy(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    name = str(i.get("name") or r.outputs["name"])
    d.client("iam", region).put_role_policy(
        RoleName=i["role"], PolicyName=name,
        PolicyDocument=json.dumps(policy_for_moto(json.loads(i["policy"]))))
    return f"{i['role']}/{name}"


@handles("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
def _role_attach(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    d.client("iam", region).attach_role_policy(RoleName=i["role"], PolicyArn=i["policyArn"])
    return f"{i['role']}/{i['policyArn']}"


# -- DynamoDB -----------------------------------------------------------------------------

@handles("aws:dynamodb/table:Table")
def _table(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    keys = [{"AttributeName": i["hashKey"], "KeyType": "HASH"}]
    if i.get("rangeKey"):
        keys.append({"AttributeName": i["rangeKey"], "KeyType": "RANGE"})
    args: dict[str, Any] = {
        "TableName": i["name"], "KeySchema": keys, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a["name"], "AttributeType": a["type"]}
                                 for a in i.get("attributes") or []],
    }
    if i.get("streamEnabled"):
        args["StreamSpecification"] = {"StreamEnabled": True,
                                       "StreamViewType": i.get("streamViewType", "NEW_IMAGE")}
    # moto ignores global-table replicas: the same table is created in every replica
    # region instead (nothing replicates between them; see "How this sandbox differs").
    regions = [region] + [str(x["regionName"]) for x in i.get("replicas") or []]
    pitr = {region: bool((i.get("pointInTimeRecovery") or {}).get("enabled"))}
    pitr.update({str(x["regionName"]): bool(x.get("pointInTimeRecovery"))
                 for x in i.get("replicas") or []})
    for reg in regions:
        ddb = d.client("dynamodb", reg)
        out = ddb.create_table(**args)["TableDescription"]
        ttl = i.get("ttl") or {}
        if ttl.get("enabled"):
            ddb.update_time_to_live(TableName=i["name"], TimeToLiveSpecification={
                "Enabled": True, "AttributeName": ttl["attributeName"]})
        if pitr.get(reg):
            ddb.update_continuous_backups(TableName=i["name"], PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": True})
        if reg == region and out.get("LatestStreamArn"):
            d.map(str(r.outputs.get("streamArn", "")), out["LatestStreamArn"])
    return str(i["name"]) + (f" (+{', '.join(regions[1:])})" if regions[1:] else "")


@handles("aws:dynamodb/tableItem:TableItem")
def _table_item(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    item = json.loads(i["item"])
    d.client("dynamodb", region).put_item(TableName=i["tableName"], Item=item)
    return f"{i['tableName']}[{next(iter(item.values()), {})}]"


# -- S3 -----------------------------------------------------------------------------------

@handles("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
def _bucket(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    bucket = str(i.get("bucket") or r.outputs["bucket"])
    kwargs: dict[str, Any] = {}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    d.client("s3", region).create_bucket(Bucket=bucket, **kwargs)
    d.map(plan_id(r), bucket)  # a bucket's id is its name
    return bucket


@handles("aws:s3/bucketVersioning:BucketVersioning",
         "aws:s3/bucketVersioningV2:BucketVersioningV2")
def _versioning(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    status = i["versioningConfiguration"]["status"]
    d.client("s3", region).put_bucket_versioning(
        Bucket=i["bucket"], VersioningConfiguration={"Status": status})
    return f"{i['bucket']} {status}"


@handles("aws:s3/bucketServerSideEncryptionConfiguration:"
         "BucketServerSideEncryptionConfiguration")
def _sse(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    rules = []
    for rule in i["rules"]:
        by_default = rule.get("applyServerSideEncryptionByDefault") or {}
        entry: dict[str, Any] = {"SSEAlgorithm": by_default["sseAlgorithm"]}
        if by_default.get("kmsMasterKeyId"):
            entry["KMSMasterKeyID"] = by_default["kmsMasterKeyId"]
        rules.append({"ApplyServerSideEncryptionByDefault": entry})
    d.client("s3", region).put_bucket_encryption(
        Bucket=i["bucket"], ServerSideEncryptionConfiguration={"Rules": rules})
    return str(i["bucket"])


@handles("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
def _public_block(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    d.client("s3", region).put_public_access_block(
        Bucket=i["bucket"], PublicAccessBlockConfiguration={
            k[0].upper() + k[1:]: bool(i.get(k)) for k in (
                "blockPublicAcls", "ignorePublicAcls", "blockPublicPolicy",
                "restrictPublicBuckets")})
    return str(i["bucket"])


def _pascal(value: Any) -> Any:
    """camelCase input keys -> the API's PascalCase; whole floats -> int."""
    if isinstance(value, dict):
        return {k[0].upper() + k[1:]: _pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@handles("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
def _replication(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    rules = _pascal(i["rules"])
    for rule in rules:
        rule["ID"] = rule.pop("Id", rule.get("ID", ""))
    d.client("s3", region).put_bucket_replication(
        Bucket=i["bucket"], ReplicationConfiguration={"Role": i["role"], "Rules": rules})
    return str(i["bucket"])


# -- KMS, SNS, Secrets Manager, logs ------------------------------------------------------

@handles("aws:kms/key:Key")
def _kms_key(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    # The alert topics are encrypted with a customer key (CloudWatch cannot publish to a
    # topic under alias/aws/sns); the topic's KmsMasterKeyId must name the key moto made.
    args: dict[str, Any] = {"Description": str(i.get("description", ""))}
    if isinstance(i.get("policy"), str) and i["policy"]:
        args["Policy"] = i["policy"]
    meta = d.client("kms", region).create_key(**args)["KeyMetadata"]
    if i.get("enableKeyRotation"):
        d.client("kms", region).enable_key_rotation(KeyId=meta["KeyId"])
    d.map(str(r.outputs.get("arn", "")), str(meta["Arn"]))
    d.map(plan_id(r), str(meta["KeyId"]))
    return str(meta["KeyId"])


@handles("aws:sns/topic:Topic")
def _topic(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    attrs = {"KmsMasterKeyId": str(i["kmsMasterKeyId"])} if i.get("kmsMasterKeyId") else {}
    arn = str(d.client("sns", region).create_topic(Name=i["name"], Attributes=attrs)["TopicArn"])
    d.map(str(r.outputs.get("arn", "")), arn)
    return arn


@handles("aws:sns/topicSubscription:TopicSubscription")
def _subscription(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    d.client("sns", region).subscribe(TopicArn=i["topic"], Protocol=i["protocol"],
                                      Endpoint=i["endpoint"])
    return f"{i['protocol']}:{i['endpoint']}"


@handles("aws:secretsmanager/secret:Secret")
def _secret(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    plan_arn = str(r.outputs["arn"])
    name = str(i.get("name") or plan_arn.split(":secret:", 1)[1])
    replicas = [str(x["region"]) for x in i.get("replicas") or []]
    args: dict[str, Any] = {"Name": name, "Description": str(i.get("description", ""))}
    if replicas:
        args["AddReplicaRegions"] = [{"Region": x} for x in replicas]
    out = d.client("secretsmanager", region).create_secret(**args)
    arn = str(out["ARN"])
    d.map(plan_arn, arn)
    d.map(plan_id(r), arn)  # a secret's id is its ARN
    # A replica's ARN is the primary's with the replica's region, in the plan as in moto.
    for x in replicas:
        d.map(plan_arn.replace(f":{region}:", f":{x}:", 1), arn.replace(f":{region}:",
                                                                        f":{x}:", 1))
    return arn + (f" (+{', '.join(replicas)})" if replicas else "")


@handles("aws:secretsmanager/secretVersion:SecretVersion")
def _secret_version(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    value = i.get("secretString")
    if not isinstance(value, str) or value == "[secret]":
        value = SECRET_PLACEHOLDER
    d.client("secretsmanager", region).put_secret_value(SecretId=i["secretId"],
                                                        SecretString=value)
    return str(i["secretId"])


@handles("aws:cloudwatch/logGroup:LogGroup")
def _log_group(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    logs = d.client("logs", region)
    logs.create_log_group(logGroupName=i["name"])
    if i.get("retentionInDays"):
        logs.put_retention_policy(logGroupName=i["name"],
                                  retentionInDays=_int(i["retentionInDays"]))
    return str(i["name"])


# -- Lambda -------------------------------------------------------------------------------

@handles("aws:lambda/layerVersion:LayerVersion")
def _layer(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    code = r.inputs.get("code")
    out = d.client("lambda", region).publish_layer_version(
        LayerName=i["layerName"], Content={"ZipFile": zip_bytes(code)},
        CompatibleRuntimes=list(i.get("compatibleRuntimes") or []))
    arn = str(out["LayerVersionArn"])
    d.map(str(r.outputs.get("arn", "")), arn)
    d.map(plan_id(r), arn)
    d.layers[arn] = runnable_layer(code, list(i.get("compatibleArchitectures") or ["x86_64"]))
    return arn


@handles("aws:lambda/function:Function")
def _function(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    code = r.inputs["code"]  # the archive object itself, never rewritten
    env = {str(k): str(v) for k, v in ((i.get("environment") or {}).get("variables") or {}).items()}
    layers = [str(x) for x in i.get("layers") or []]
    missing = [x for x in layers if x not in d.layers]
    if missing:
        raise LookupError(f"layer(s) {', '.join(missing)} were not deployed")
    args: dict[str, Any] = {
        "FunctionName": i["name"], "Runtime": i.get("runtime", "python3.12"),
        "Role": i["role"], "Handler": i["handler"], "Code": {"ZipFile": zip_bytes(code)},
        "Timeout": _int(i.get("timeout", 3)), "MemorySize": _int(i.get("memorySize", 128)),
        "Environment": {"Variables": env}, "Layers": layers, "Tags": _tags(i),
    }
    if i.get("architectures"):
        args["Architectures"] = list(i["architectures"])
    arn = str(d.client("lambda", region).create_function(**args)["FunctionArn"])
    d.functions[str(i["name"])] = Function(
        name=str(i["name"]), region=region, arn=arn, role_arn=str(i["role"]),
        handler=str(i["handler"]), runtime=str(args["Runtime"]),
        timeout_s=float(args["Timeout"]), memory_mb=int(args["MemorySize"]), env=env,
        code=code, layers=[d.layers[x] for x in layers])
    return arn


@handles("aws:lambda/permission:Permission")
def _permission(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    args = {"FunctionName": i["function"], "StatementId": str(i.get("statementId") or r.name),
            "Action": i["action"], "Principal": i["principal"]}
    if i.get("sourceArn"):
        args["SourceArn"] = i["sourceArn"]
    d.client("lambda", region).add_permission(**args)
    return f"{i['function']} <- {i['principal']}"


# -- EventBridge, CloudWatch --------------------------------------------------------------

@handles("aws:cloudwatch/eventRule:EventRule")
def _rule(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    name = str(i.get("name") or r.outputs["name"])
    args = {"Name": name, "Description": str(i.get("description", ""))}
    if i.get("scheduleExpression"):
        args["ScheduleExpression"] = i["scheduleExpression"]
    if i.get("eventPattern"):
        args["EventPattern"] = i["eventPattern"]
    d.client("events", region).put_rule(**args)
    d.rules[(region, name)] = str(i.get("scheduleExpression", ""))
    d.map(plan_id(r), name)  # a rule's id is its name
    return name


@handles("aws:cloudwatch/eventTarget:EventTarget")
def _target(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    target = {"Id": str(i.get("targetId") or r.name)[:64], "Arn": i["arn"]}
    if i.get("input"):
        target["Input"] = i["input"]
    d.client("events", region).put_targets(Rule=i["rule"], Targets=[target])
    expression = d.rules.get((region, str(i["rule"])), "")
    fn = str(i["arn"]).rsplit(":function:", 1)[-1]
    if expression and fn in d.functions:
        d.schedules.append(Schedule(rule=str(i["rule"]), region=region, expression=expression,
                                    function=fn, input=json.loads(i.get("input") or "{}")))
    return f"{i['rule']} -> {fn}"


@handles("aws:cloudwatch/metricAlarm:MetricAlarm")
def _alarm(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    name = str(i.get("name") or r.outputs["name"])
    args: dict[str, Any] = {
        "AlarmName": name, "EvaluationPeriods": _int(i["evaluationPeriods"]),
        "ComparisonOperator": i["comparisonOperator"],
        "Threshold": float(i.get("threshold", 0)),
        "AlarmDescription": str(i.get("alarmDescription", "")),
        "TreatMissingData": str(i.get("treatMissingData", "missing")),
        "ActionsEnabled": bool(i.get("actionsEnabled", True)),
    }
    for src, dst in (("alarmActions", "AlarmActions"), ("okActions", "OKActions"),
                     ("insufficientDataActions", "InsufficientDataActions")):
        if i.get(src):
            args[dst] = list(i[src])
    if i.get("metricQueries"):
        args["Metrics"] = _pascal(i["metricQueries"])
    else:
        args.update(Namespace=i["namespace"], MetricName=i["metricName"],
                    Period=_int(i["period"]),
                    Dimensions=[{"Name": k, "Value": str(v)}
                                for k, v in (i.get("dimensions") or {}).items()])
        if i.get("extendedStatistic"):
            args["ExtendedStatistic"] = i["extendedStatistic"]
        else:
            args["Statistic"] = i.get("statistic", "Average")
    if i.get("datapointsToAlarm"):
        args["DatapointsToAlarm"] = _int(i["datapointsToAlarm"])
    d.client("cloudwatch", region).put_metric_alarm(**args)
    return name


@handles("aws:cloudwatch/dashboard:Dashboard")
def _dashboard(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    d.client("cloudwatch", region).put_dashboard(DashboardName=i["dashboardName"],
                                                 DashboardBody=i["dashboardBody"])
    return str(i["dashboardName"])


# -- API Gateway, ACM ---------------------------------------------------------------------

@handles("aws:apigateway/restApi:RestApi")
def _rest_api(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    types = (i.get("endpointConfiguration") or {}).get("types") or "REGIONAL"
    out = d.client("apigateway", region).create_rest_api(
        name=i["name"], endpointConfiguration={
            "types": [types] if isinstance(types, str) else list(types)}, tags=_tags(i))
    api_id = str(out["id"])
    d.map(plan_id(r), api_id)
    d.map(str(r.outputs.get("id", "")), api_id)
    d.map(str(r.outputs.get("rootResourceId", "")), str(out["rootResourceId"]))
    return api_id


@handles("aws:apigateway/resource:Resource")
def _api_resource(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    out = d.client("apigateway", region).create_resource(
        restApiId=i["restApi"], parentId=i["parentId"], pathPart=i["pathPart"])
    d.map(plan_id(r), str(out["id"]))
    return str(out["id"])


@handles("aws:apigateway/method:Method")
def _api_method(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    d.client("apigateway", region).put_method(
        restApiId=i["restApi"], resourceId=i["resourceId"], httpMethod=i["httpMethod"],
        authorizationType=i.get("authorization", "NONE"))
    return f"{i['httpMethod']} {i['resourceId']}"


@handles("aws:apigateway/integration:Integration")
def _api_integration(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    args = {"restApiId": i["restApi"], "resourceId": i["resourceId"],
            "httpMethod": i["httpMethod"], "type": i["type"]}
    for k in ("integrationHttpMethod", "uri"):
        if i.get(k):
            args[k] = i[k]
    d.client("apigateway", region).put_integration(**args)
    return str(i.get("uri", i["type"]))


@handles("aws:apigateway/deployment:Deployment")
def _api_deployment(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    out = d.client("apigateway", region).create_deployment(restApiId=i["restApi"])
    d.map(plan_id(r), str(out["id"]))
    return str(out["id"])


@handles("aws:apigateway/stage:Stage")
def _api_stage(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    d.client("apigateway", region).create_stage(
        restApiId=i["restApi"], stageName=i["stageName"], deploymentId=i["deployment"],
        variables={k: str(v) for k, v in (i.get("variables") or {}).items()})
    return f"{i['restApi']}/{i['stageName']}"


@handles("aws:acm/certificate:Certificate")
def _certificate(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    arn = str(d.client("acm", region).request_certificate(
        DomainName=i["domainName"], ValidationMethod=i.get("validationMethod", "DNS"))[
        "CertificateArn"])
    d.map(str(r.outputs.get("arn", "")), arn)
    return arn


@handles("aws:apigateway/domainName:DomainName")
def _domain(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    out = d.client("apigateway", region).create_domain_name(
        domainName=i["domainName"], regionalCertificateArn=i.get("regionalCertificateArn", ""),
        endpointConfiguration={"types": ["REGIONAL"]},
        securityPolicy=i.get("securityPolicy", "TLS_1_2"))
    if out.get("regionalDomainName"):
        d.map(str(r.outputs.get("regionalDomainName", "")), str(out["regionalDomainName"]))
    return str(i["domainName"])


@handles("aws:apigateway/basePathMapping:BasePathMapping")
def _base_path(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    args = {"domainName": i["domainName"], "restApiId": i["restApi"]}
    if i.get("stageName"):
        args["stage"] = i["stageName"]
    if i.get("basePath"):
        args["basePath"] = i["basePath"]
    d.client("apigateway", region).create_base_path_mapping(**args)
    return f"{i['domainName']} -> {i['restApi']}"


# -- Route 53 -----------------------------------------------------------------------------

_HC_KEYS = {
    "type": "Type", "fqdn": "FullyQualifiedDomainName", "ipAddress": "IPAddress",
    "port": "Port", "resourcePath": "ResourcePath", "requestInterval": "RequestInterval",
    "failureThreshold": "FailureThreshold", "measureLatency": "MeasureLatency",
    "invertHealthcheck": "Inverted", "enableSni": "EnableSNI",
    "childHealthchecks": "ChildHealthChecks", "childHealthThreshold": "HealthThreshold",
    "insufficientDataHealthStatus": "InsufficientDataHealthStatus",
    "searchString": "SearchString", "regions": "Regions",
}


@handles("aws:route53/healthCheck:HealthCheck")
def _health_check(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    cfg = {api: _pascal(i[k]) for k, api in _HC_KEYS.items() if i.get(k) is not None}
    if i.get("cloudwatchAlarmName"):
        cfg["AlarmIdentifier"] = {"Name": i["cloudwatchAlarmName"],
                                  "Region": i.get("cloudwatchAlarmRegion", region)}
    out = d.client("route53", region).create_health_check(
        CallerReference=r.name, HealthCheckConfig=cfg)
    hc_id = str(out["HealthCheck"]["Id"])
    d.map(plan_id(r), hc_id)
    d.map(str(r.outputs.get("id", "")), hc_id)
    return hc_id


@handles("aws:route53/record:Record")
def _record(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    rrset: dict[str, Any] = {"Name": i["name"], "Type": i["type"]}
    if i.get("ttl") is not None:
        rrset["TTL"] = _int(i["ttl"])
    if i.get("records"):
        rrset["ResourceRecords"] = [{"Value": str(v)} for v in i["records"]]
    if i.get("aliases"):
        a = i["aliases"][0]
        rrset["AliasTarget"] = {"DNSName": a["name"], "HostedZoneId": a["zoneId"],
                                "EvaluateTargetHealth": bool(a.get("evaluateTargetHealth"))}
    if i.get("setIdentifier"):
        rrset["SetIdentifier"] = i["setIdentifier"]
    if i.get("failoverRoutingPolicies"):
        rrset["Failover"] = i["failoverRoutingPolicies"][0]["type"]
    if i.get("healthCheckId"):
        rrset["HealthCheckId"] = i["healthCheckId"]
    d.client("route53", region).change_resource_record_sets(
        HostedZoneId=i["zoneId"], ChangeBatch={"Changes": [
            {"Action": "UPSERT", "ResourceRecordSet": rrset}]})
    return f"{i['name']} {i['type']}" + (f" {rrset['Failover']}" if "Failover" in rrset else "")


def _zones(d: Deployment, calls: list[tuple[str, dict[str, Any]]]) -> None:
    """The program looks hosted zones up (they exist before ``pulumi up``): create them."""
    done: set[str] = set()
    for token, args in list(calls):
        name = str(args.get("name", ""))
        if token != "aws:route53/getZone:getZone" or name in done:
            continue
        done.add(name)
        plan_zone = "Z" + _hex(name, 12).upper()  # RecordingMocks.call's answer for getZone
        out = d.client("route53", "us-east-1").create_hosted_zone(
            Name=name, CallerReference=f"sandbox-{name}")
        zone_id = str(out["HostedZone"]["Id"]).rsplit("/", 1)[-1]
        d.map(plan_zone, zone_id)
        d.created.append(Created("aws:route53/zone:Zone (looked up)", name, "global", zone_id))

