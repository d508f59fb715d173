"""The network of an SQL stack in moto: the VPCs and subnets the stack names (they exist
before ``pulumi up``), the security groups and rules the program registers, and the RDS
subnet groups.

A stack names existing VPC and subnet ids (``database.network``) that moto has never heard
of. ``existing_network`` creates them before the deploy, as the user would have: each subnet
with the CIDR block the program read from ``aws.ec2.get_subnet`` (so the cross-region rules
the program derived from those blocks hold moto's real subnets), each VPC with a block per
/16 its subnets use (secondary blocks, as AWS allows up to five). The plan id -> moto id map
(``Deployment.ids``) then rewrites every later input that names them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi

from components.plan.mocks import Registration
from components.sandbox.deploy_model import Created, Deployment, _int, _tags, handles, plan_id

GET_SUBNET = "aws:ec2/getSubnet:getSubnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
#: AWS allows a primary and four secondary IPv4 blocks per VPC.
MAX_VPC_BLOCKS = 5


class NetworkError(ValueError):
    """The stack's network cannot be laid out in moto (the message says why)."""


def _subnet_cidrs(run: Any) -> dict[str, str]:
    """Subnet id -> the CIDR block the program was told when it looked the subnet up."""
    out: dict[str, str] = {}
    for token, args in list(run.mocks.calls):
        sid = str(args.get("id", ""))
        if token != GET_SUBNET or not sid or sid in out:
            continue
        answer, _ = run.mocks.call(pulumi.runtime.MockCallArgs(
            token=token, args=dict(args), provider=""))
        out[sid] = str(answer["cidrBlock"])
    return out


def _vpcs_by_region(run: Any) -> dict[str, dict[str, list[str]]]:
    """region -> VPC id -> the subnet ids the program places in it (stack order)."""
    vpcs: dict[str, dict[str, list[str]]] = {}
    sg_vpc: dict[str, str] = {}
    for r in run.resources:
        if r.type == SECURITY_GROUP and r.inputs.get("vpcId"):
            region = r.region or "us-east-1"
            vpc = str(r.inputs["vpcId"])
            vpcs.setdefault(region, {}).setdefault(vpc, [])
            sg_vpc[plan_id(r)] = vpc

    def place(region: str, subnet: str, vpc: str | None) -> None:
        in_region = vpcs.setdefault(region, {})
        if vpc is None:
            if len(in_region) != 1:
                raise NetworkError(
                    f"subnet {subnet} in {region}: cannot tell which of the VPCs "
                    f"{', '.join(sorted(in_region)) or '(none)'} holds it; name it in a "
                    "function's vpc_config with a security group of that VPC")
            vpc = next(iter(in_region))
        if subnet not in in_region.setdefault(vpc, []):
            in_region[vpc].append(subnet)

    for r in run.resources:
        region = r.region or "us-east-1"
        cfg = r.inputs.get("vpcConfig") if r.type == "aws:lambda/function:Function" else None
        if isinstance(cfg, dict):
            groups = [sg_vpc[g] for g in cfg.get("securityGroupIds") or [] if g in sg_vpc]
            for s in cfg.get("subnetIds") or []:
                place(region, str(s), groups[0] if groups else None)
    for r in run.resources:
        if r.type == "aws:rds/subnetGroup:SubnetGroup":
            region = r.region or "us-east-1"
            placed = {s for v in vpcs.get(region, {}).values() for s in v}
            for s in r.inputs.get("subnetIds") or []:
                if str(s) not in placed:
                    place(region, str(s), None)
    return vpcs


def existing_network(d: Deployment, run: Any) -> None:
    """Create the VPCs and subnets the stack names, before anything that uses them."""
    cidrs = _subnet_cidrs(run)
    for region, vpcs in _vpcs_by_region(run).items():
        ec2 = d.client("ec2", region)
        azs = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
        for n, (vpc, subnets) in enumerate(sorted(vpcs.items())):
            nets = [ipaddress.ip_network(cidrs[s]) for s in subnets if s in cidrs]
            blocks: list[str] = []
            for net in nets:
                block = str(net.supernet(new_prefix=16)) if net.prefixlen > 16 else str(net)
                if block not in blocks:
                    blocks.append(block)
            if len(blocks) > MAX_VPC_BLOCKS:
                raise NetworkError(f"VPC {vpc} in {region}: its subnets span {len(blocks)} "
                                   f"/16 blocks; AWS allows {MAX_VPC_BLOCKS} per VPC")
            if not blocks:
                blocks = [f"10.{200 + n}.0.0/16"]
            moto_vpc = str(ec2.create_vpc(CidrBlock=blocks[0])["Vpc"]["VpcId"])
            for extra in blocks[1:]:
                ec2.associate_vpc_cidr_block(VpcId=moto_vpc, CidrBlock=extra)
            ec2.create_tags(Resources=[moto_vpc], Tags=[{"Key": "standby:plan-id",
                                                          "Value": vpc}])
            d.map(vpc, moto_vpc)
            d.created.append(Created("aws:ec2/vpc:Vpc (named by the stack)", vpc, region,
                                     moto_vpc))
            spare = ipaddress.IPv4Network(blocks[0])
            taken = [ipaddress.IPv4Network(cidrs[s]) for s in subnets if s in cidrs]
            free = (str(x) for x in reversed(list(spare.subnets(new_prefix=24)))
                    if not any(x.overlaps(y) for y in taken))
            for i, subnet in enumerate(subnets):
                out = ec2.create_subnet(VpcId=moto_vpc, CidrBlock=cidrs.get(subnet) or next(free),
                                        AvailabilityZone=azs[i % len(azs)])["Subnet"]
                d.map(subnet, str(out["SubnetId"]))
                d.created.append(Created("aws:ec2/subnet:Subnet (named by the stack)", subnet,
                                         region, f"{out['SubnetId']} {out['CidrBlock']}"))


# -- security groups ----------------------------------------------------------------------

@handles(SECURITY_GROUP)
def _security_group(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    ec2 = d.client("ec2", region)
    args: dict[str, Any] = {"GroupName": str(i.get("name") or r.outputs["name"]),
                            "Description": str(i.get("description") or "Managed by Pulumi")}
    if i.get("vpcId"):
        args["VpcId"] = i["vpcId"]
    group = str(ec2.create_security_group(**args)["GroupId"])
    tags = _tags(i)
    if tags:
        ec2.create_tags(Resources=[group], Tags=[{"Key": k, "Value": v}
                                                 for k, v in tags.items()])
    # AWS gives a new VPC group an allow-all egress rule; the Pulumi (Terraform) provider
    # deletes it, so a group holds exactly the rules the program registers.
    ec2.revoke_security_group_egress(GroupId=group, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    d.map(plan_id(r), group)
    return group


def _permission(i: dict[str, Any]) -> dict[str, Any]:
    perm: dict[str, Any] = {"IpProtocol": str(i["ipProtocol"])}
    if i.get("fromPort") is not None:
        perm["FromPort"] = _int(i["fromPort"])
    if i.get("toPort") is not None:
        perm["ToPort"] = _int(i["toPort"])
    extra = {"Description": str(i["description"])} if i.get("description") else {}
    if i.get("cidrIpv4"):
        perm["IpRanges"] = [{"CidrIp": str(i["cidrIpv4"]), **extra}]
    elif i.get("cidrIpv6"):
        perm["Ipv6Ranges"] = [{"CidrIpv6": str(i["cidrIpv6"]), **extra}]
    elif i.get("referencedSecurityGroupId"):
        perm["UserIdGroupPairs"] = [{"GroupId": str(i["referencedSecurityGroupId"]), **extra}]
    elif i.get("prefixListId"):
        perm["PrefixListIds"] = [{"PrefixListId": str(i["prefixListId"]), **extra}]
    else:
        raise ValueError("a security group rule needs one of cidrIpv4, cidrIpv6, "
                         "referencedSecurityGroupId or prefixListId")
    return perm


@handles("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
         "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
def _security_group_rule(d: Deployment, r: Registration, i: dict[str, Any],
                         region: str) -> str:
    ec2 = d.client("ec2", region)
    ingress = r.type.endswith("IngressRule")
    call = (ec2.authorize_security_group_ingress if ingress
            else ec2.authorize_security_group_egress)
    out = call(GroupId=i["securityGroupId"], IpPermissions=[_permission(i)])
    rules = out.get("SecurityGroupRules") or []
    rule_id = str(rules[0]["SecurityGroupRuleId"]) if rules else plan_id(r)
    d.map(plan_id(r), rule_id)
    peer = i.get("cidrIpv4") or i.get("referencedSecurityGroupId") or i.get("cidrIpv6") or ""
    way = "from" if ingress else "to"
    return f"{i['securityGroupId']} {way} {peer}:{_int(i.get('fromPort', 0))} {rule_id}"


@handles("aws:rds/subnetGroup:SubnetGroup")
def _db_subnet_group(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    name = str(i.get("name") or r.outputs["name"])
    d.client("rds", region).create_db_subnet_group(
        DBSubnetGroupName=name,
        DBSubnetGroupDescription=str(i.get("description") or "Managed by Pulumi"),
        SubnetIds=[str(s) for s in i["subnetIds"]],
        Tags=[{"Key": k, "Value": v} for k, v in _tags(i).items()])
    d.map(plan_id(r), name)
    return name
