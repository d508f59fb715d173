"""A TencentDB for MySQL (CDB) instance with one database and a least-privilege account.

Used twice: the application database (``data.py``) and the state, lease and pointer store
(``control.py``). The run-time code connects with the account, never as root; the root and
account passwords are generated here and kept only in Pulumi's encrypted state and SSM.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random
from tencentcloud_iac_pulumi import Provider, mysql, ssm

from components.spec import NetworkSpec

#: CDB MySQL 8.0, two-node high availability (the smallest spec offered for it is 1 core
#: 1000 MB; CDB "Instance specifications", cloud.tencent.com/document/product/236/17229).
ENGINE_VERSION = "8.0"
MEM_MB = 1000
PORT = 3306
ACCOUNT = "standby_app"
#: Enough for the run-time queries (``UPDATE ... WHERE token = ?``) and the app's DML; no
#: DDL on the state store after the first migration, no global privilege.
APP_PRIVILEGES = ["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "INDEX", "ALTER"]


@dataclass
class Cdb:
    instance: mysql.Instance
    database: str
    account: str
    password: random.RandomPassword


def cdb_instance(name: str, *, instance_name: str, database: str, volume_gb: int,
                 network: NetworkSpec, provider: Provider, parent: pulumi.Resource,
                 tags: dict[str, str]) -> Cdb:
    o = pulumi.ResourceOptions(parent=parent, provider=provider)
    root = random.RandomPassword(f"{name}-root-password", length=32, special=False,
                                 opts=pulumi.ResourceOptions(parent=parent))
    password = random.RandomPassword(f"{name}-password", length=32, special=False,
                                     opts=pulumi.ResourceOptions(parent=parent))
    instance = mysql.Instance(
        name,
        instance_name=instance_name,
        engine_version=ENGINE_VERSION,
        mem_size=MEM_MB,
        volume_size=volume_gb,
        root_password=root.result,
        vpc_id=network.vpc_id,
        subnet_id=network.subnet_ids[0],
        intranet_port=PORT,
        internet_service=0,  # private only: functions reach it through the VPC
        slave_deploy_mode=1,  # the replica node in another zone of the region
        slave_sync_mode=1,  # semi-synchronous inside the region
        charge_type="POSTPAID",
        force_delete=False,
        tags=tags,
        opts=o,
    )
    mysql.Database(f"{name}-db", instance_id=instance.id, db_name=database,
                   character_set_name="utf8mb4", opts=o)
    mysql.Account(f"{name}-account", mysql_id=instance.id, name=ACCOUNT,
                  password=password.result, host="%",
                  description="standby run time and app", opts=o)
    mysql.Privilege(
        f"{name}-privilege", mysql_id=instance.id, account_name=ACCOUNT, account_host="%",
        globals=[],
        databases=[mysql.PrivilegeDatabaseArgs(database_name=database,
                                               privileges=APP_PRIVILEGES)],
        opts=o,
    )
    return Cdb(instance, database, ACCOUNT, password)


def dsn_secret(name: str, *, secret_name: str, host: pulumi.Input[str],
               port: pulumi.Input[int], cdb: Cdb, provider: Provider,
               parent: pulumi.Resource, description: str,
               extra: dict[str, pulumi.Input[object]] | None = None) -> ssm.Secret:
    """An SSM secret holding ``{host, port, user, password, database}`` as JSON."""
    o = pulumi.ResourceOptions(parent=parent, provider=provider)
    secret = ssm.Secret(f"{name}-secret", secret_name=secret_name, description=description,
                        recovery_window_in_days=7, is_enabled=True, opts=o)
    ssm.SecretVersion(
        f"{name}-secret-value", secret_name=secret.secret_name, version_id="v1",
        # The generated passwords are secret outputs, so the document stays secret.
        secret_string=pulumi.Output.json_dumps({
            "engine": "mysql", "host": host, "port": port, "user": cdb.account,
            "password": cdb.password.result, "database": cdb.database, **(extra or {}),
        }),
        opts=o,
    )
    return secret
