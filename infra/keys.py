"""Manage API keys: create, list, revoke; print an owner's callback signing secret.

    python -m infra.keys create --owner alice --name laptop     # prints the key once
    python -m infra.keys list
    python -m infra.keys revoke <key_id>
    python -m infra.keys secret --owner alice                   # her callbacks' whsec_ secret

Targets the running local stack by default (its .local/runner.json), or a deployed stack
with --stack NAME (reads the ApiKeysTableName and TasksTableName outputs), or tables with
--table NAME (and --tasks-table NAME to revoke). Keys are stored only as SHA-256 hashes.
Revoking also records the key id in the tasks table, where the stream function looks it up:
the key's stream links stop working within KEY_CACHE_SECONDS, like the key itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskrunner.adapters.dynamodb_keys import DynamoDbApiKeyStore, DynamoDbKeyRevocations
from taskrunner.domain.auth import ApiKeyRecord, hash_key, new_raw_key, owner_signing_secret, revoke_key

ROOT = Path(__file__).resolve().parents[1]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Owner names: lowercase letters, digits, '_' and '-', 1 to 64 characters. They appear in
# stored keys and in logs, so nothing that could act as a separator or need escaping.
OWNER_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")


class InvalidOwnerError(ValueError):
    pass


def check_owner(owner: str) -> str:
    if not OWNER_PATTERN.fullmatch(owner):
        raise InvalidOwnerError(
            f"invalid owner {owner!r}: use 1 to 64 characters from a-z, 0-9, '_' and '-' (e.g. alice, team-data)"
        )
    return owner


def create_key(store: Any, owner: str, name: str, raw: str | None = None) -> tuple[str, ApiKeyRecord]:
    check_owner(owner)
    if raw is None:
        key_id, raw = new_raw_key()
    else:
        key_id = raw.split("_")[1] if raw.count("_") >= 2 else raw[:8]
    record = ApiKeyRecord(key_id=key_id, key_hash=hash_key(raw), owner=owner, name=name, created_at=now())
    if store.get(record.key_hash) is None:
        store.put(record)
    return raw, record


def _target(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The key store, the revocations (None without a tasks table) and the local state."""
    import boto3

    state: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    table = args.table
    tasks_table = args.tasks_table
    if args.stack:
        cfn = boto3.client("cloudformation", endpoint_url=endpoint)
        outputs = cfn.describe_stacks(StackName=args.stack)["Stacks"][0].get("Outputs", [])
        table = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "ApiKeysTableName")
        tasks_table = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "TasksTableName")
    elif not table:
        state_file = Path(args.state_file)
        if not state_file.exists():
            raise SystemExit(
                f"no running local stack ({state_file} missing): start `make run`, or pass --stack/--table"
            )
        state = json.loads(state_file.read_text())
        endpoint = state["endpoint"]
        table = state["physical"]["ApiKeysTable"]["Ref"]
        tasks_table = state["physical"]["TasksTable"]["Ref"]
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name=region)
    revocations = DynamoDbKeyRevocations(client, tasks_table) if tasks_table else None
    return DynamoDbApiKeyStore(client, table), revocations, state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.keys", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", help="deployed stack name (reads its ApiKeysTableName output)")
    parser.add_argument("--table", help="API keys table name")
    parser.add_argument("--tasks-table", help="tasks table name (with --table: where revocations are recorded)")
    parser.add_argument("--state-file", default=str(ROOT / ".local" / "runner.json"))
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key (printed once, stored as a hash)")
    create.add_argument("--owner", required=True)
    create.add_argument("--name", default="")
    sub.add_parser("list", help="list keys (ids, owners; never the keys)")
    revoke = sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    secret = sub.add_parser("secret", help="print an owner's callback signing secret")
    secret.add_argument("--owner", required=True)
    args = parser.parse_args(argv)
    if args.command == "create":
        try:
            check_owner(args.owner)
        except InvalidOwnerError as exc:
            parser.error(str(exc))
    store, revocations, state = _target(args)
    if args.command == "create":
        raw, record = create_key(store, args.owner, args.name)
        print(json.dumps({"api_key": raw, **record.to_public()}, indent=2))
        print("store the key now: it is not shown again", file=sys.stderr)
    elif args.command == "list":
        for record in store.all():
            status = f"revoked {record.revoked_at}" if record.revoked_at else "active"
            name = record.name or "-"
            print(f"{record.key_id}  owner={record.owner}  name={name}  created={record.created_at}  {status}")
    elif args.command == "revoke":
        if revocations is None:
            print("revoking needs the tasks table too (--tasks-table NAME), for the stream links", file=sys.stderr)
            return 2
        found = revoke_key(store, revocations, args.key_id, now())
        if found is None:
            print(f"no key with id {args.key_id}", file=sys.stderr)
            return 1
        print(
            f"revoked {found.key_id} (owner {found.owner}); the API and its stream links stop "
            "accepting it within KEY_CACHE_SECONDS (60 s by default)"
        )
    elif args.command == "secret":
        master = _master_secret(args, state)
        print(owner_signing_secret(master, args.owner))
    return 0


def _master_secret(args: argparse.Namespace, state: dict[str, Any]) -> bytes:
    from taskrunner.adapters.webhook_sender import secret_bytes

    if args.stack:
        import boto3

        outputs = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]["Outputs"]
        arn = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "SigningSecretArn")
        return secret_bytes(boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])
    if state.get("signing_secret"):
        return secret_bytes(state["signing_secret"])
    value = os.environ.get("SIGNING_SECRET")
    if not value:
        raise SystemExit("set SIGNING_SECRET, or use --stack")
    return secret_bytes(value)


if __name__ == "__main__":
    raise SystemExit(main())
