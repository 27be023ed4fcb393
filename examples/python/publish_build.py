#!/usr/bin/env python3
"""Publish a Slipway `build.requested` job from Python, with pika and msgpack.

The index entry comes from a YAML or JSON file (one entry, kebab-case fields as in the container
index), from FIELD=VALUE arguments, or both (arguments win):

    publish_build.py app-id=team job-id=web git-url=https://git.example.org/team/web.git
    publish_build.py --entry web.yaml desired-tag=2.1 depends-on=team/base:1,team/tools:3

It prints the job id, which every later event of the job (lint.passed, build.succeeded, ...)
carries. The exit status is non-zero when the broker does not confirm the message or no queue is
bound for it. The contract is docs/contract.md and common/schema/slipway-message.schema.json.

Needs `pip install pika msgpack` (and PyYAML for YAML files); `deploy/dev-env.sh` installs them
in /opt/slipway-py-venv.
"""

import argparse
import json
import os
import sys
import time
import uuid

import msgpack
import pika

KIND = "build.requested"
# Entry fields holding lists; FIELD=a,b gives ["a", "b"].
LIST_FIELDS = {"depends-on"}


def load_entry(path, fields):
    """The entry: the file's mapping (if any) updated with the FIELD=VALUE arguments."""
    entry = {}
    if path:
        with open(path, encoding="utf-8") as file:
            text = file.read()
        if path.endswith((".yaml", ".yml")):
            import yaml  # only needed for YAML files

            entry = yaml.safe_load(text)
        else:
            entry = json.loads(text)
        if not isinstance(entry, dict):
            sys.exit(f"{path}: expected one entry (a mapping), found {type(entry).__name__}")
    for field in fields:
        name, sep, value = field.partition("=")
        if not sep:
            sys.exit(f"expected FIELD=VALUE, found {field!r}")
        entry[name] = value.split(",") if name in LIST_FIELDS else value
    missing = [name for name in ("app-id", "job-id", "git-url") if name not in entry]
    if missing:
        sys.exit(f"the entry needs {', '.join(missing)}")
    return entry


def wire_id(value, string_ids):
    """Slipway writes ids as 16-byte bins and reads those or the canonical string."""
    return str(value) if string_ids else value.bytes


def envelope(entry, job_id, cause, commit, string_ids):
    """The message as Slipway's contract describes it (a map with named fields)."""
    message_id = uuid.uuid4()  # any UUID; Slipway's own are UUIDv7 (time-ordered)
    payload = {"entry": entry}
    if commit:
        payload["commit"] = commit
    return {
        "v": 1,
        "id": wire_id(message_id, string_ids),
        "job_id": wire_id(job_id, string_ids),
        "kind": KIND,
        "cause": cause,
        "created_at": time.time_ns() // 1_000_000,  # Unix milliseconds
        "payload": payload,
    }, message_id


def main():
    parser = argparse.ArgumentParser(
        description="Publish a Slipway build.requested job (MessagePack over AMQP 0-9-1).",
        epilog="Prints the job id. See docs/contract.md.",
    )
    parser.add_argument("fields", nargs="*", metavar="FIELD=VALUE",
                        help="entry fields, e.g. app-id=team git-url=URL (depends-on=a,b)")
    parser.add_argument("--entry", metavar="FILE", help="the entry as a .yaml/.yml or .json file")
    parser.add_argument("--url", default=os.environ.get(
        "SLIPWAY_BROKER__URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        help="broker URL (default: $SLIPWAY_BROKER__URL or the local guest broker)")
    parser.add_argument("--exchange", default="slipway",
                        help="the exchange: the deployment's namespace (default: slipway)")
    parser.add_argument("--cause", default="user",
                        help="user, git-change, schedule, parent-rebuilt:IMAGE or package-update:PKG")
    parser.add_argument("--commit", help="build exactly this commit (40 or 64 hex digits)")
    parser.add_argument("--job-id", type=uuid.UUID, default=None,
                        help="the job id to use (default: a new one)")
    parser.add_argument("--string-ids", action="store_true",
                        help="send ids as UUID strings instead of 16-byte bins")
    args = parser.parse_args()

    entry = load_entry(args.entry, args.fields)
    job_id = args.job_id or uuid.uuid4()
    message, message_id = envelope(entry, job_id, args.cause, args.commit, args.string_ids)
    properties = pika.BasicProperties(
        content_type="application/msgpack",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=str(message_id),
        timestamp=message["created_at"] // 1000,
        type=KIND,
        headers={"x-slipway-job-id": str(job_id)},
    )
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()  # basic_publish now waits for the broker's ack
        channel.basic_publish(
            exchange=args.exchange,
            routing_key=KIND,  # the routing key is the kind
            body=msgpack.packb(message, use_bin_type=True),
            properties=properties,
            mandatory=True,  # no bound queue: an error, not a silent drop
        )
    except pika.exceptions.UnroutableError:
        sys.exit(f"no queue is bound for {KIND} on exchange {args.exchange!r}: nothing consumes it")
    except pika.exceptions.NackError:
        sys.exit("the broker refused the message (nack)")
    except pika.exceptions.ChannelClosedByBroker as closed:
        sys.exit(f"the broker closed the channel: {closed.reply_code} {closed.reply_text}")
    finally:
        connection.close()
    print(job_id)


if __name__ == "__main__":
    main()
