"""Tencent Cloud adapters of the run-time core: signed API client, switchers, probes,
alerts, the monitor and wrapper handlers.

Importing this package registers the adapter's probe, switch and state store kinds
(``kinds``). The state,
lease and pointer store is the cloud-neutral ``components.runtime.sql_state`` on TencentDB
for MySQL. ``STANDBY_TENCENT_ENDPOINT=127.0.0.1:PORT`` sends every API call (over http) to a
local stand-in such as ``components.sandbox.tencent_stub``.
"""

from components.runtime.tencent import kinds as kinds
