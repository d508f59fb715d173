"""IAM documents as the sandbox's moto can evaluate them (moto 5.2,
``moto/iam/access_control.py``): trust policies it can read, actions under the names it
checks, and no resource scoping or conditions it would get wrong."""

from __future__ import annotations

from typing import Any


def trust_for_sandbox(doc: dict[str, Any], deployer_arn: str) -> dict[str, Any]:
    """The role's trust policy, with the deployer added next to every service principal.

    On AWS the Lambda service assumes a function's role; in the sandbox the deployer does,
    on the function's behalf. moto evaluates trust policies on ``AssumeRole`` and fails
    (HTTP 500, a ``TypeError`` in moto 5.2) on a statement whose principal names a service
    only, so the deployer goes into the same statement as the service.
    """
    statements = doc.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    out = []
    for st in statements:
        st = dict(st)
        principal = st.get("Principal")
        if isinstance(principal, dict) and "Service" in principal and "AWS" not in principal:
            st["Principal"] = {**principal, "AWS": deployer_arn}
        out.append(st)
    return {**doc, "Statement": out}



#: Services whose moto handlers pass the request's resource ARN to the IAM check; for every
#: other service moto checks the action against ``Resource: "*"`` only.
MOTO_RESOURCE_AWARE = {"s3", "sqs", "iam", "sts"}


#: API Gateway's IAM actions are HTTP verbs; moto names the action by the operation.
_APIGW_VERBS = {"GET": "Get*", "PATCH": "Update*", "POST": "Create*", "PUT": "Put*",
                "DELETE": "Delete*"}


def moto_action_names(action: str) -> list[str]:
    """The names moto 5.2 checks for an IAM action, where they differ from IAM's.

    moto forms ``<SigV4 signing name>:<operation>``: CloudWatch signs as ``monitoring``,
    and API Gateway and Lambda are named by operation (``UpdateStage``, ``Invoke``), where
    IAM uses ``cloudwatch:``, HTTP verbs (``apigateway:PATCH``) and ``lambda:InvokeFunction``;
    and moto checks ``dynamodb:TransactWriteItems``, an action IAM does not have.
    """
    service, _, name = action.partition(":")
    if service == "cloudwatch":
        return [f"monitoring:{name}"]
    if service == "apigateway" and name in _APIGW_VERBS:
        return [f"apigateway:{_APIGW_VERBS[name]}"]
    if action == "lambda:InvokeFunction":
        return ["lambda:Invoke"]
    if action == "dynamodb:ConditionCheckItem":
        # AWS has no TransactWriteItems action: it authorizes each entry by its own action
        # (ConditionCheckItem is used in transactions only). moto checks the operation's
        # name, so a role that may condition-check may call TransactWriteItems; the entries'
        # other actions are not checked (see "How this sandbox differs").
        return ["dynamodb:TransactWriteItems"]
    return []


def policy_for_moto(doc: dict[str, Any]) -> dict[str, Any]:
    """The plan's policy as moto can evaluate it: same actions, same effect.

    moto 5.2 (``moto/iam/access_control.py``) matches a statement's ``Resource`` against
    ``"*"`` for services it has no resource for, so a resource-scoped Allow never matches;
    and it evaluates a ``Condition`` without request context, which turns an Allow with a
    condition into an explicit Deny. So, per statement: conditions are dropped and, outside
    ``MOTO_RESOURCE_AWARE``, resources widen to ``"*"``. Deny statements that this would
    widen are left out. Each action also gets the name moto checks (``moto_action_names``).
    What stays enforced: the set of actions each role may call, and S3 resources. Resource
    scoping elsewhere is checked by the plan's policy tests instead.
    """
    statements = doc.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    out: list[dict[str, Any]] = []
    for st in statements:
        actions = st.get("Action") or []
        actions = [actions] if isinstance(actions, str) else list(actions)
        actions = [x for a in actions for x in (a, *moto_action_names(a))]
        by_scope: dict[bool, list[str]] = {}
        for a in actions:
            aware = a == "*" or a.split(":", 1)[0] in MOTO_RESOURCE_AWARE
            by_scope.setdefault(aware, []).append(a)
        for aware, acts in sorted(by_scope.items()):
            resource = st.get("Resource", "*") if aware else "*"
            widened = resource != st.get("Resource", "*") or "Condition" in st
            if st.get("Effect") == "Deny" and widened:
                continue
            new = {k: v for k, v in st.items() if k not in ("Condition", "Action", "Resource")}
            new.update(Action=acts, Resource=resource)
            out.append(new)
    return {"Version": doc.get("Version", "2012-10-17"), "Statement": out}

