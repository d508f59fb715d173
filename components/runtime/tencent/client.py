"""Signed Tencent Cloud API calls through the SDK's ``CommonClient`` (one small dependency,
``tencentcloud-sdk-python-common``).

Credentials come from ``TENCENTCLOUD_SECRETID``/``TENCENTCLOUD_SECRETKEY``/
``TENCENTCLOUD_SESSIONTOKEN``: the names SCF injects for the function's run role. The SDK's
own environment loader reads other names and no token, so the credential is built here.
Every failure (an error answer, a network error) is ``TencentApiError`` with the documented
code, never the SDK's exception.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from components.runtime.errors import RuntimeFailure

ENDPOINT_ENV = "STANDBY_TENCENT_ENDPOINT"
#: COS speaks its own XML API (own signature), so a local stand-in has its own address.
COS_ENDPOINT_ENV = "STANDBY_TENCENT_COS_ENDPOINT"


class TencentApiError(RuntimeFailure):
    def __init__(self, code: str, message: str, action: str) -> None:
        super().__init__(f"{action}: {code}: {message}")
        self.code, self.message, self.action = code, message, action


class TencentApi:
    def __init__(self, secret_id: str, secret_key: str, token: str | None = None,
                 endpoint: str | None = None, timeout_s: int = 10,
                 cos_endpoint: str | None = None) -> None:
        if not secret_id or not secret_key:
            raise ValueError("a Tencent API credential needs a secret id and a secret key "
                             "(TENCENTCLOUD_SECRETID, TENCENTCLOUD_SECRETKEY)")
        self._cred = (secret_id, secret_key, token or None)
        self.endpoint = endpoint or None
        self.cos_endpoint = cos_endpoint or None
        self.timeout_s = timeout_s
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TencentApi:
        e = os.environ if env is None else env
        return cls(e.get("TENCENTCLOUD_SECRETID", ""), e.get("TENCENTCLOUD_SECRETKEY", ""),
                   e.get("TENCENTCLOUD_SESSIONTOKEN") or None, e.get(ENDPOINT_ENV) or None,
                   cos_endpoint=e.get(COS_ENDPOINT_ENV) or None)

    def _client(self, service: str, version: str, region: str) -> Any:
        from tencentcloud.common import credential
        from tencentcloud.common.common_client import CommonClient
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile

        key = (service, version, region)
        with self._lock:
            if key not in self._clients:
                if self.endpoint:  # a local stand-in speaks plain http
                    hp = HttpProfile(endpoint=self.endpoint, protocol="http",
                                     reqTimeout=self.timeout_s)
                else:
                    hp = HttpProfile(endpoint=f"{service}.tencentcloudapi.com",
                                     reqTimeout=self.timeout_s)
                self._clients[key] = CommonClient(
                    service, version, credential.Credential(*self._cred), region,
                    ClientProfile(httpProfile=hp))
            return self._clients[key]

    def cos(self, region: str) -> Any:
        """A COS client (``cos-python-sdk-v5``) for ``region`` with this credential."""
        from qcloud_cos import CosConfig, CosS3Client

        sid, key, token = self._cred
        kw: dict[str, Any] = {}
        if self.cos_endpoint:
            ip, _, port = self.cos_endpoint.rpartition(":")
            kw = {"IP": ip, "Port": int(port), "Scheme": "http"}
        return CosS3Client(CosConfig(Region=region, SecretId=sid, SecretKey=key, Token=token,
                                     Timeout=self.timeout_s, **kw), retry=0)

    def call(self, service: str, version: str, region: str, action: str,
             params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``Response`` object of a successful call (without ``RequestId``)."""
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
            TencentCloudSDKException,
        )

        try:
            out = self._client(service, version, region).call_json(action, dict(params))
        except TencentCloudSDKException as exc:
            raise TencentApiError(str(exc.get_code()), str(exc.get_message()),
                                  f"{service}:{action}") from None
        except Exception as exc:  # transport errors the SDK does not wrap
            raise TencentApiError("ClientNetworkError", f"{type(exc).__name__}: {exc}",
                                  f"{service}:{action}") from None
        resp = dict(out.get("Response") or {})
        resp.pop("RequestId", None)
        return resp
