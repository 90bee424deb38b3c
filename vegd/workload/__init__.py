"""The gateway workload and the status rooms: pure functions from the model to plain dicts.

`deployment` renders the apps/v1 Deployment of a gateway and decides whether a live one needs an
update; `status` computes a gateway's `.status`, the Events for its transitions and a VPC's
`status.bfdPort`. No kubernetes client, no I/O, no clock: the time comes in as a string.
"""
