"""The embedded endpoint keeps its data across restarts (--state-dir): tables and their items,
queues with their messages (receive counts and in-flight deadlines as they were), secrets;
provisioning again keeps them; an unreadable snapshot is set aside and the endpoint starts
empty, saying so; a snapshot is never left half-written."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from infra.local.persistence import SNAPSHOT, write_atomically
from infra.local.procs import free_port, wait_for_port
from infra.local.provision import provision
from infra.local.template import ROOT, Resolver, evaluate_conditions, load_template, parameter_defaults

ADMIN = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


@contextmanager
def endpoint(state_dir: Path, log: Path, every: float = 0.5) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "infra.local.moto_server", "-p", str(port)),
                *("--state-dir", str(state_dir), "--snapshot-every", str(every)),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        assert wait_for_port("127.0.0.1", port, 20), log.read_text()
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)


def client(service: str, url: str) -> Any:
    return boto3.session.Session(**ADMIN).client(service, endpoint_url=url, config=NO_RETRIES)


def provisioned(url: str) -> dict[str, dict[str, str]]:
    template = load_template()
    resolver = Resolver(parameters=parameter_defaults(template), physical={})
    resolver.conditions = evaluate_conditions(template, resolver)
    return provision(template, resolver, boto3.session.Session(**ADMIN), url, prefix="state")


def test_data_survives_a_stop_and_a_restart_with_provisioning_again(tmp_path: Path) -> None:
    state, log = tmp_path / "aws-state", tmp_path / "moto.err"
    with endpoint(state, log) as (url, proc):
        physical = provisioned(url)
        table, queue = physical["TasksTable"]["Ref"], physical["TasksQueue"]["QueueUrl"]
        secret = physical["SigningSecret"]["Ref"]
        value = client("secretsmanager", url).get_secret_value(SecretId=secret)["SecretString"]
        ddb, sqs = client("dynamodb", url), client("sqs", url)
        for i in range(20):
            ddb.put_item(TableName=table, Item={"task_id": {"S": f"t{i}"}, "status": {"S": "PENDING"}})
        for i in range(5):
            sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}")
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=2, VisibilityTimeout=2)["Messages"]
        assert len(got) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert (state / SNAPSHOT).exists()
    assert "saved 2" in log.read_text() or "saved" in log.read_text()

    with endpoint(state, log) as (url, _):
        assert "restored" in log.read_text(), log.read_text()
        again = provisioned(url)  # the runner provisions on every start: it must keep the data
        assert again["TasksTable"]["Ref"] == table
        ddb, sqs = client("dynamodb", url), client("sqs", url)
        items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
        assert sorted(i["task_id"]["S"] for i in items) == sorted(f"t{i}" for i in range(20))
        # the secret the runner provisions is the same value (it sets the declared local one)
        assert client("secretsmanager", url).get_secret_value(SecretId=secret)["SecretString"] == value
        # 3 visible now; the 2 received ones come back when their visibility timeout ends,
        # with the receive they already had counted
        bodies: dict[str, int] = {}
        deadline = time.monotonic() + 10
        while len(bodies) < 5 and time.monotonic() < deadline:
            for m in sqs.receive_message(
                QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
            ).get("Messages", []):
                bodies[m["Body"]] = int(m["Attributes"]["ApproximateReceiveCount"])
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        assert sorted(bodies) == [f"m{i}" for i in range(5)]
        received_twice = {b for b, n in bodies.items() if n == 2}
        assert received_twice == {m["Body"] for m in got}


def test_periodic_snapshot_covers_a_kill_9(tmp_path: Path) -> None:
    state, log = tmp_path / "aws-state", tmp_path / "moto.err"
    with endpoint(state, log, every=0.5) as (url, proc):
        table = provisioned(url)["TasksTable"]["Ref"]
        client("dynamodb", url).put_item(TableName=table, Item={"task_id": {"S": "kept"}})
        time.sleep(1.5)  # > the snapshot period
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with endpoint(state, log) as (url, _):
        item = client("dynamodb", url).get_item(TableName=table, Key={"task_id": {"S": "kept"}})
        assert "Item" in item


def test_unreadable_snapshot_is_kept_aside_and_the_endpoint_starts_empty(tmp_path: Path) -> None:
    state, log = tmp_path / "aws-state", tmp_path / "moto.err"
    state.mkdir()
    (state / SNAPSHOT).write_bytes(b'{"format": 1, "moto": "0.0.1"}\n' + b"\x80\x05garbage")
    with endpoint(state, log) as (url, _):
        assert client("dynamodb", url).list_tables()["TableNames"] == []
    text = log.read_text()
    assert "cannot restore" in text and "moto 0.0.1" in text and "starting EMPTY" in text, text
    aside = list(state.glob(f"{SNAPSHOT}.*.unreadable"))
    assert len(aside) == 1 and aside[0].read_bytes().endswith(b"garbage")


def test_a_write_that_fails_midway_leaves_the_previous_snapshot_whole(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / SNAPSHOT
    write_atomically(path, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk gone")

    import os

    monkeypatch.setattr(os, "fsync", broken_fsync)
    try:
        write_atomically(path, b"new" * 1000)
    except OSError:
        pass
    assert path.read_bytes() == b"old"


def test_snapshots_space_out_as_they_grow_costly(tmp_path: Path) -> None:
    """A snapshot stops every call while it pickles: with much data the next one waits longer,
    so the endpoint spends at most 1/COST_FACTOR of its time in snapshots."""
    from infra.local.persistence import COST_FACTOR, Persistence

    state = Persistence(app=None, state_dir=tmp_path, every=2.0, say=lambda _: None)
    assert state.next_wait() == 2.0
    state.dirty = True
    state.save()
    assert state.last_cost > 0
    assert state.next_wait() == max(2.0, COST_FACTOR * state.last_cost)
    state.last_cost = 0.01  # a small endpoint: the usual interval
    assert state.next_wait() == 2.0
    state.last_cost = 0.5  # as a snapshot of a few hundred MB takes
    assert state.next_wait() == 0.5 * COST_FACTOR
