"""azure-eventhub (its own AMQP stack, pyamqp, the default) against the
sandbox's Event Hubs, over AMQP with TLS and over AMQP over WebSockets.

Settings it needs, and nothing else changed:
- `custom_endpoint_address="sb://127.0.0.1:{port}"`: where the connection
  goes, while `fully_qualified_namespace` stays the namespace (it names the
  token's entity, `sb://{namespace}/{hub}`, and the AMQP `hostname`);
- `connection_verify=<CA file>`: the sandbox CA as the trusted root (TLS
  stays verified; pyamqp hands it to `ssl` / websocket-client);
- `transport_type`: `TransportType.Amqp` for AMQP over TLS; with a custom
  endpoint azure-eventhub uses `AmqpOverWebsocket` unless told otherwise
  (the `default-transport` check shows it), which needs the
  `websocket-client` package;
- the credential: azure-identity's ClientSecretCredential at the sandbox
  authority (`authority=`, `disable_instance_discovery=True`,
  `connection_verify=`).

Each check prints what it observed; the Rust side (microsoft_eventhub.rs)
compares that with what the sandbox stored.
"""

import json
import logging
import os
import sys
from urllib.parse import urlparse

from azure.eventhub import EventData, EventHubProducerClient, TransportType
from azure.identity import ClientSecretCredential

from compat import authority_host, env, expect, fail, main, ok, ran

KEY = "device-7"


def credential(tenant):
    return ClientSecretCredential(
        tenant, env("AZURE_CLIENT_ID"), env("AZURE_CLIENT_SECRET"),
        authority=authority_host(), disable_instance_discovery=True,
        connection_verify=env("SBX_CA_FILE"))


def endpoint(variable):
    """`sb://127.0.0.1:{port}` from one of the sandbox's endpoint URLs."""
    url = urlparse(env(variable))
    return f"sb://{url.hostname}:{url.port}"


def producer(transport, tenant=None, **extra):
    """A producer for the demo hub through the sandbox; `transport` None
    leaves azure-eventhub's default."""
    variable = ("EVENTHUBS_AMQP_ENDPOINT" if transport == TransportType.Amqp
                else "EVENTHUBS_WEBSOCKET_ENDPOINT")
    # One retry: a local sandbox needs no more, and a send that hangs fails
    # within the harness's time limit with the client's own error.
    extra.setdefault("retry_total", 1)
    if os.environ.get("SBX_PYAMQP_DEBUG"):
        extra["logging_enable"] = True  # pyamqp's frame trace
    kwargs = dict(
        fully_qualified_namespace=env("EVENTHUBS_NAMESPACE"),
        eventhub_name=env("EVENTHUBS_HUB"),
        credential=credential(tenant or env("AZURE_TENANT_ID")),
        custom_endpoint_address=endpoint(variable),
        connection_verify=env("SBX_CA_FILE"),
        **extra)
    if transport is not None:
        kwargs["transport_type"] = transport
    return EventHubProducerClient(**kwargs)


def send_and_read(client, label):
    """Hub properties, a keyed batch with properties, a batch to partition 2,
    then every partition's properties."""
    with client:
        hub = client.get_eventhub_properties()
        expect(hub["eventhub_name"] == env("EVENTHUBS_HUB"), f"hub properties: {hub}")
        expect(hub["partition_ids"] == ["0", "1", "2", "3"], f"partition ids: {hub}")
        ok(f"hub properties: {hub['eventhub_name']}, partitions {hub['partition_ids']}, "
           f"created {hub['created_at'].isoformat()}")

        batch = client.create_batch(partition_key=KEY)
        for n in range(3):
            event = EventData(json.dumps({"n": n, "via": label}))
            event.properties = {"seq": n, "via": label}
            batch.add(event)
        client.send_batch(batch)
        ok(f"sent 3 events with partition key {KEY} and properties over {label}")

        pinned = client.create_batch(partition_id="2")
        for n in range(2):
            pinned.add(EventData(f"pinned {n}"))
        client.send_batch(pinned)
        ok(f"sent 2 events to partition 2 over {label}")

        total = 0
        for pid in hub["partition_ids"]:
            p = client.get_partition_properties(pid)
            expect(p["eventhub_name"] == env("EVENTHUBS_HUB") and p["id"] == pid,
                   f"partition {pid} properties name the wrong entity: {p}")
            stored = 0 if p["is_empty"] else p["last_enqueued_sequence_number"] + 1
            total += stored
            print("partition-properties " + json.dumps({
                "id": p["id"],
                "beginning_sequence_number": p["beginning_sequence_number"],
                "last_enqueued_sequence_number": p["last_enqueued_sequence_number"],
                "last_enqueued_offset": p["last_enqueued_offset"],
                "is_empty": p["is_empty"],
                "last_enqueued_time_utc": p["last_enqueued_time_utc"].isoformat(),
            }), flush=True)
        expect(total == 5, f"the partitions report {total} events, not the 5 sent")
        two = client.get_partition_properties("2")
        expect(not two["is_empty"], f"partition 2 is reported empty: {two}")
        ok(f"partition properties of {len(hub['partition_ids'])} partitions add up to {total}")


def send_amqp():
    ran("azure-eventhub", "send and properties over AMQP (TLS)")
    send_and_read(producer(TransportType.Amqp), "amqp")


def send_websocket():
    ran("azure-eventhub", "send and properties over AMQP over WebSockets")
    send_and_read(producer(TransportType.AmqpOverWebsocket), "websocket")


def default_transport():
    ran("azure-eventhub", "default transport with a custom endpoint")
    client = producer(None)
    chosen = client._config.transport_type  # what azure-eventhub decided
    expect(chosen == TransportType.AmqpOverWebsocket,
           f"with a custom endpoint and no transport_type, azure-eventhub chose {chosen}")
    ok(f"with a custom endpoint azure-eventhub chose {chosen.name}")
    send_and_read(client, "default")


def refused(transport, label):
    """A credential at the partner's own tenant: every token is valid, and the
    service refuses it with 40100."""
    ran("azure-eventhub", f"home-tenant token over {label}")
    client = producer(transport, tenant=env("SBX_PARTNER_TENANT_ID"), retry_total=0)
    with client:
        for what, call in (
            ("hub properties", client.get_eventhub_properties),
            ("send", lambda: client.send_batch([EventData("must not be stored")])),
        ):
            try:
                call()
            except Exception as e:  # the check is the error's text, whatever its class
                text = str(e)
                expect("40100" in text, f"{what} with a home-tenant token failed without 40100: "
                       f"{type(e).__name__}: {text}")
                said = next(line for line in text.splitlines() if "40100" in line)
                ok(f"{what} refused: {type(e).__name__}: {said.strip()[:300]}")
            else:
                fail(f"{what} with a home-tenant token succeeded")


def home_tenant_amqp():
    refused(TransportType.Amqp, "AMQP (TLS)")


def home_tenant_websocket():
    refused(TransportType.AmqpOverWebsocket, "WebSockets")


if os.environ.get("SBX_PYAMQP_DEBUG"):
    # The client's frame log, to see what it sent and read.
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)

main({
    "send-amqp": send_amqp,
    "send-websocket": send_websocket,
    "default-transport": default_transport,
    "home-tenant-amqp": home_tenant_amqp,
    "home-tenant-websocket": home_tenant_websocket,
})
