#!/usr/bin/env python3
"""A Kafka client aura did not write, for tests/interop.rs: Python confluent-kafka with its
AvroSerializer / AvroDeserializer and SchemaRegistryClient.

    produce --bootstrap B --registry R --topic T --count N --schema-file schemas/TdaAnomaly.avsc
        Publishes N anomalies written with a NEWER TdaAnomaly schema than aura's: the schema file
        plus an optional `region` field with a default. The serializer registers that schema
        itself under `<topic>-value`. Keys are the correlation ids (UTF-8). Prints the anomaly
        ids as one JSON array on stdout.

    consume --bootstrap B --registry R --topic T --count N --timeout S
        Reads T with read_committed from the beginning in a fresh group and decodes each value
        with the writer schema the registry returns for its id. Prints each record as one JSON
        line ({"key": ..., "value": {...}}) on stdout; timestamp-millis fields as epoch ms.
        Exits 1 when fewer than N records arrive before the timeout.

Dependencies: tests/interop/requirements.txt. Diagnostics go to stderr.
"""

import argparse
import datetime
import json
import random
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

# The field this client's writer schema has and aura's reader schema does not: BACKWARD and
# FORWARD compatible, since it is optional with a default.
REGION_FIELD = {
    "name": "region",
    "type": ["null", "string"],
    "default": None,
    "doc": "Deployment region of the source; added by a newer producer than aura.",
}
REGIONS = ["eu-west-1", "us-east-1", "ap-south-1", None]
TAGS = ["latency", "memory", "cpu", "errors", "network", "disk", "saturation"]
SEVERITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]


def evolved_schema(path):
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    if any(field["name"] == REGION_FIELD["name"] for field in schema["fields"]):
        sys.exit(f"{path} already has a `region` field: this test needs a schema newer than it")
    schema["fields"].append(REGION_FIELD)
    return json.dumps(schema)


def anomaly(rng, run, n, now_ms):
    """One anomaly with every contract field, shaped like aura's own generator's."""
    source = f"svc-{rng.randrange(20):03d}"
    scale = rng.uniform(0.5, 4.0)
    diagram = []
    for i in range(rng.randrange(4, 48)):
        birth = rng.uniform(0.0, scale)
        # A few long-lived loops carry the shape; the rest is short-lived noise.
        life = rng.uniform(0.5, 2.0) * scale if i % 7 == 0 else rng.uniform(0.0, 0.2)
        diagram.append({"dimension": int(i % 3 == 0), "birth": birth, "death": birth + life})
    loops = sum(1 for p in diagram if p["dimension"] == 1 and p["death"] - p["birth"] > 0.5)
    region = rng.choice(REGIONS)
    return {
        "anomaly_id": f"py-{run}-{n}",
        # One incident per anomaly, so each gets a command of its own (a repeated correlation
        # id would join the open incident and be reported as a correlation event instead).
        "correlation_id": f"{source}-{run}-{n}",
        "source": source,
        "detected_at": now_ms,
        "anomaly_score": rng.uniform(0.05, 1.0),
        "severity": rng.choice(SEVERITIES),
        "betti": [1, loops],
        "diagram": diagram,
        "signature": [rng.uniform(-1.0, 1.0) for _ in range(8)],
        "tags": [rng.choice(TAGS) for _ in range(rng.randrange(1, 4))],
        "entities": [f"{source}-pod-{e}" for e in range(rng.randrange(1, 4))],
        "attributes": {"generator": "confluent-kafka-python", "region": region or "unknown"},
        "region": region,
    }


def registry_conf(args):
    # Without a timeout, a registry request whose answer never comes blocks forever; with one,
    # the client retries it.
    return {"url": args.registry, "timeout": 10}


def produce(args):
    registry = SchemaRegistryClient(registry_conf(args))
    serializer = AvroSerializer(registry, evolved_schema(args.schema_file), conf={"auto.register.schemas": True})
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
    })
    failures = []

    def delivered(err, msg):
        if err is not None:
            failures.append(f"{msg.key()!r}: {err}")

    rng = random.Random(args.seed)
    run = uuid.uuid4().hex[:8]
    ids = []
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    for n in range(args.count):
        record = anomaly(rng, run, n, int(time.time() * 1000))
        value = serializer(record, ctx)
        while True:
            try:
                producer.produce(args.topic, key=record["correlation_id"].encode("utf-8"), value=value,
                                 on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        ids.append(record["anomaly_id"])
    left = producer.flush(30)
    if left or failures:
        sys.exit(f"produce: {left} records undelivered after 30 s, {len(failures)} failed: {failures[:5]}")
    print(f"produce: {len(ids)} records to {args.topic}", file=sys.stderr)
    json.dump(ids, sys.stdout)
    print()


def as_json(value):
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def consume(args):
    registry = SchemaRegistryClient(registry_conf(args))
    deserializer = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"interop-python-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
    })
    consumer.subscribe([args.topic])
    deadline = time.monotonic() + args.timeout
    got = 0
    try:
        while got < args.count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                # The topic appears only once aura writes to it.
                if msg.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise KafkaException(msg.error())
            value = deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
            key = msg.key().decode("utf-8") if msg.key() is not None else None
            print(json.dumps({"key": key, "value": value}, default=as_json), flush=True)
            got += 1
    finally:
        consumer.close()
    if got < args.count:
        sys.exit(f"consume: {got} of {args.count} records from {args.topic} within {args.timeout} s")
    print(f"consume: {got} records from {args.topic}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("produce", "consume"):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
        p.add_argument("--registry", required=True, help="Confluent-compatible schema registry URL")
        p.add_argument("--topic", required=True)
        p.add_argument("--count", type=int, required=True)
    p = sub.choices["produce"]
    p.add_argument("--schema-file", required=True, help="aura's TdaAnomaly.avsc, which this client extends")
    p.add_argument("--seed", type=int, default=7)
    p = sub.choices["consume"]
    p.add_argument("--timeout", type=float, required=True, help="seconds to wait for --count records")
    args = parser.parse_args()
    if args.command == "produce":
        produce(args)
    else:
        consume(args)


if __name__ == "__main__":
    main()
