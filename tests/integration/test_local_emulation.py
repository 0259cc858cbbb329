"""The embedded endpoint's emulations (infra/local/emulation.py): DynamoDB TTL deletes expired
items (and only those); an SQS long poll that sleeps still wakes on a send, on a message
becoming visible again, and at the end of its wait, with moto's answers."""

from __future__ import annotations

import threading
import time

import boto3
import pytest
from moto import mock_aws

from infra.local.emulation import (
    TtlSweeper,
    cached_update_expressions,
    faster_ast_traversal,
    narrowed_index_queries,
    sleeping_long_polls,
    sweep_expired,
)


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.session.Session(region_name="us-east-1")


def _table(ddb, name: str, *, ttl: bool, range_key: bool = False) -> None:
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
    if range_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "sk", "AttributeType": "S"})
    ddb.create_table(TableName=name, KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST")
    if ttl:
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )


def _keys(ddb, name: str) -> set[str]:
    return {i["pk"]["S"] + i.get("sk", {}).get("S", "") for i in ddb.scan(TableName=name)["Items"]}


def test_ttl_sweep_deletes_only_expired_items_of_tables_with_ttl(aws):
    ddb = aws.client("dynamodb")
    now = int(time.time())
    _table(ddb, "with-ttl", ttl=True)
    _table(ddb, "ranged", ttl=True, range_key=True)
    _table(ddb, "no-ttl", ttl=False)
    for table, extra in (("with-ttl", {}), ("ranged", {"sk": {"S": "#"}}), ("no-ttl", {})):
        for pk, expires in (("old", {"N": str(now - 5)}), ("new", {"N": str(now + 3600)}), ("text", {"S": "1"})):
            ddb.put_item(TableName=table, Item={"pk": {"S": pk}, **extra, "expires_at": expires})
        ddb.put_item(TableName=table, Item={"pk": {"S": "none"}, **extra})

    assert sweep_expired() == 2
    assert _keys(ddb, "with-ttl") == {"new", "text", "none"}  # a TTL that is not a Number is ignored, as on AWS
    assert _keys(ddb, "ranged") == {"new#", "text#", "none#"}
    assert _keys(ddb, "no-ttl") == {"old", "new", "text", "none"}
    assert sweep_expired() == 0
    assert sweep_expired(now=now + 7200) == 2  # the rest expires in its time


def test_ttl_sweeper_runs_on_its_own_and_reports_changes(aws):
    ddb = aws.client("dynamodb")
    _table(ddb, "t", ttl=True)
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "expires_at": {"N": str(int(time.time()) - 1)}})
    changed = threading.Event()
    sweeper = TtlSweeper(0.05, changed=changed.set)
    sweeper.start()
    try:
        assert changed.wait(5)
    finally:
        sweeper.stop()
    assert sweeper.deleted == 1 and _keys(ddb, "t") == set()


@pytest.fixture
def queue(aws):
    sleeping_long_polls()
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    return sqs, url


def _receive_after(sqs, url: str, wait: int) -> tuple[list, float]:
    started = time.monotonic()
    messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=wait).get("Messages", [])
    return messages, time.monotonic() - started


def test_long_poll_wakes_on_send(queue):
    sqs, url = queue
    threading.Timer(0.3, lambda: sqs.send_message(QueueUrl=url, MessageBody="hello")).start()
    messages, took = _receive_after(sqs, url, 10)
    assert [m["Body"] for m in messages] == ["hello"]
    assert 0.25 < took < 2


def test_long_poll_wakes_when_an_in_flight_message_becomes_visible(queue):
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="again")
    assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1  # in flight for 1 s
    messages, took = _receive_after(sqs, url, 10)
    assert [m["Body"] for m in messages] == ["again"]
    assert 0.8 < took < 2.5


def test_long_poll_wakes_for_a_delayed_message_and_ends_at_its_wait(queue):
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    messages, took = _receive_after(sqs, url, 5)
    assert [m["Body"] for m in messages] == ["later"] and 0.8 < took < 2.5
    sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
    messages, took = _receive_after(sqs, url, 1)
    assert messages == [] and 0.9 < took < 2


def test_cached_update_expressions_give_each_call_its_own_values(aws):
    cached_update_expressions()
    faster_ast_traversal()
    ddb = aws.client("dynamodb")
    _table(ddb, "u", ttl=False)
    set_n = "SET #n = :n, #v = if_not_exists(#v, :zero) + :one"
    for i in range(3):  # the same expression string, different values each time
        ddb.update_item(
            TableName="u",
            Key={"pk": {"S": "a"}},
            UpdateExpression=set_n,
            ExpressionAttributeNames={"#n": "name", "#v": "version"},
            ExpressionAttributeValues={":n": {"S": f"n{i}"}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
        )
    item = ddb.get_item(TableName="u", Key={"pk": {"S": "a"}})["Item"]
    assert item["name"] == {"S": "n2"} and item["version"] == {"N": "3"}
    # the same placeholders bound to other attributes, then a different expression
    ddb.update_item(
        TableName="u",
        Key={"pk": {"S": "a"}},
        UpdateExpression=set_n,
        ExpressionAttributeNames={"#n": "other", "#v": "count"},
        ExpressionAttributeValues={":n": {"S": "x"}, ":zero": {"N": "10"}, ":one": {"N": "5"}},
    )
    ddb.update_item(
        TableName="u",
        Key={"pk": {"S": "a"}},
        UpdateExpression="REMOVE #n",
        ConditionExpression="#v = :three",
        ExpressionAttributeNames={"#n": "name", "#v": "version"},
        ExpressionAttributeValues={":three": {"N": "3"}},
    )
    item = ddb.get_item(TableName="u", Key={"pk": {"S": "a"}})["Item"]
    assert item == {
        "pk": {"S": "a"},
        "version": {"N": "3"},
        "other": {"S": "x"},
        "count": {"N": "15"},
    }
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.update_item(
            TableName="u",
            Key={"pk": {"S": "a"}},
            UpdateExpression=set_n,
            ConditionExpression="attribute_not_exists(pk)",
            ExpressionAttributeNames={"#n": "name", "#v": "version"},
            ExpressionAttributeValues={":n": {"S": "no"}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
        )
    with pytest.raises(ddb.exceptions.ClientError, match="Invalid UpdateExpression"):
        ddb.update_item(TableName="u", Key={"pk": {"S": "a"}}, UpdateExpression="SET = broken")
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    assert UpdateExpressionParser.make.cache_info().hits >= 3


def _index_table(ddb) -> None:
    ddb.create_table(
        TableName="indexed",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "gpk", "AttributeType": "S"},
            {"AttributeName": "gsk", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [
                    {"AttributeName": "gpk", "KeyType": "HASH"},
                    {"AttributeName": "gsk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _pages(ddb, **query) -> list[str]:
    seen, start = [], None
    while True:
        page = ddb.query(
            TableName="indexed", IndexName="by-g", Limit=3, **query, **({"ExclusiveStartKey": start} if start else {})
        )
        seen += [i["id"]["S"] for i in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return seen


def test_index_queries_look_only_at_their_partition_with_moto_s_answers(aws):
    import random

    narrowed_index_queries()
    ddb = aws.client("dynamodb")
    _index_table(ddb)
    rng = random.Random(7)
    rows = {}
    for n in range(300):
        item = {"id": {"S": f"t{n:03d}"}}
        if rng.random() < 0.8:  # the rest are outside the sparse index
            item["gpk"] = {"S": f"owner#{rng.randrange(4)}"}
            item["gsk"] = {"S": f"2026-12-{rng.randrange(1, 29):02d}#{n:03d}"}
        rows[item["id"]["S"]] = item
        ddb.put_item(TableName="indexed", Item=item)
    ddb.update_item(  # an item that leaves the index, and one that moves partition
        TableName="indexed", Key={"id": {"S": "t001"}}, UpdateExpression="REMOVE gpk, gsk"
    )
    rows["t001"] = {"id": {"S": "t001"}}
    ddb.update_item(
        TableName="indexed",
        Key={"id": {"S": "t002"}},
        UpdateExpression="SET gpk = :p, gsk = :s",
        ExpressionAttributeValues={":p": {"S": "owner#9"}, ":s": {"S": "2026-12-30#002"}},
    )
    rows["t002"] = {**rows["t002"], "gpk": {"S": "owner#9"}, "gsk": {"S": "2026-12-30#002"}}

    for pk in ("owner#0", "owner#3", "owner#9", "nobody"):
        in_pk = sorted((r for r in rows.values() if r.get("gpk", {}).get("S") == pk), key=lambda r: r["gsk"]["S"])
        values = {":p": {"S": pk}}
        assert _pages(ddb, KeyConditionExpression="gpk = :p", ExpressionAttributeValues=values) == [
            r["id"]["S"] for r in in_pk
        ]
        newest = [r["id"]["S"] for r in reversed(in_pk) if r["gsk"]["S"] < "2026-12-15"]
        assert (
            _pages(
                ddb,
                KeyConditionExpression="gpk = :p AND gsk < :c",
                ExpressionAttributeValues={**values, ":c": {"S": "2026-12-15"}},
                ScanIndexForward=False,
            )
            == newest
        )
    assert len(ddb.scan(TableName="indexed")["Items"]) == 300  # a Scan still sees every item


def test_index_buckets_of_the_endpoint_follow_every_write(tmp_path):
    """Through the embedded endpoint, where index queries use buckets kept between calls:
    a query after any write (put, update moving or removing the key, delete, batch, TTL
    deletion) sees it at once."""
    import subprocess
    import sys

    from botocore.config import Config

    from infra.local.procs import free_port, wait_for_port
    from infra.local.template import ROOT

    port = free_port()
    log = (tmp_path / "endpoint.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.local.moto_server", "-p", str(port), "--ttl-sweep-every", "0.2"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 20)
        session = boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name="us-east-1")
        ddb = session.client(
            "dynamodb", endpoint_url=f"http://127.0.0.1:{port}", config=Config(retries={"max_attempts": 1})
        )
        _index_table(ddb)

        def ids(pk: str) -> list[str]:
            return _pages(ddb, KeyConditionExpression="gpk = :p", ExpressionAttributeValues={":p": {"S": pk}})

        def put(n: int, pk: str, **extra) -> None:
            item = {"id": {"S": f"t{n}"}, "gpk": {"S": pk}, "gsk": {"S": f"{n:03d}"}, **extra}
            ddb.put_item(TableName="indexed", Item=item)

        for n in range(6):
            put(n, "a" if n % 2 else "b")
        assert ids("a") == ["t1", "t3", "t5"] and ids("b") == ["t0", "t2", "t4"]
        ddb.update_item(
            TableName="indexed",
            Key={"id": {"S": "t1"}},
            UpdateExpression="SET gpk = :b",
            ExpressionAttributeValues={":b": {"S": "b"}},
        )
        assert ids("a") == ["t3", "t5"] and ids("b") == ["t0", "t1", "t2", "t4"]
        ddb.update_item(TableName="indexed", Key={"id": {"S": "t3"}}, UpdateExpression="REMOVE gpk")
        ddb.delete_item(TableName="indexed", Key={"id": {"S": "t0"}})
        assert ids("a") == ["t5"] and ids("b") == ["t1", "t2", "t4"]
        ddb.batch_write_item(
            RequestItems={
                "indexed": [
                    {"PutRequest": {"Item": {"id": {"S": "t9"}, "gpk": {"S": "a"}, "gsk": {"S": "009"}}}},
                    {"DeleteRequest": {"Key": {"id": {"S": "t5"}}}},
                ]
            }
        )
        assert ids("a") == ["t9"]
        ddb.update_time_to_live(
            TableName="indexed", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
        put(7, "a", expires_at={"N": str(int(time.time()) - 1)})
        assert ids("a") == ["t7", "t9"]
        deadline = time.monotonic() + 10
        while ids("a") != ["t9"]:  # the TTL sweep deletes it: the buckets follow
            assert time.monotonic() < deadline, ids("a")
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
