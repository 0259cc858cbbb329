"""The benchmark's own arithmetic and its request-counting flow (in-process, on moto), so
`make bench` cannot rot. The live benchmarks themselves run with `python -m bench --quick`."""

import json
import math

import pytest

from bench import cli
from bench.billing import Call, FlowResult, Flows, Index, TableSpec, attribute_size, item_size
from bench.bundle import measure
from bench.cost import PRICES, bench_requests, scenario
from bench.report import Report, Row, at_least, at_most
from bench.stats import percentile, summary


def test_percentiles_and_summary():
    samples = [float(x) for x in range(1, 101)]
    assert percentile(samples, 50) == pytest.approx(50.5)
    assert percentile(samples, 99) == pytest.approx(99.01)
    assert percentile([3.0], 95) == 3.0
    assert math.isnan(percentile([], 50))
    s = summary([0.010, 0.020, 0.030], scale=1000)
    assert s["count"] == 3 and s["p50"] == 20.0 and s["max"] == 30.0
    assert summary([]) == {"count": 0}


def test_item_sizes_follow_dynamodb_rules():
    assert attribute_size({"S": "abc"}) == 3
    assert attribute_size({"N": "12345"}) == 4
    assert attribute_size({"BOOL": True}) == 1
    assert attribute_size({"M": {"a": {"S": "xy"}}}) == 3 + 1 + 1 + 2
    assert item_size({"task_id": {"S": "t1"}, "n": {"N": "1"}}) == len("task_id") + 2 + 1 + 2
    assert item_size(None) == 0


def test_write_units_bill_every_index_the_write_touches():
    table = TableSpec(
        "TasksTable",
        ("task_id",),
        (Index("by-status", ("owner", "status_key"), "ALL"), Index("by-due", ("sweep_pk", "due_at"), "KEYS_ONLY")),
    )
    new = {
        "task_id": {"S": "t"},
        "owner": {"S": "o"},
        "status_key": {"S": "PENDING#1"},
        "sweep_pk": {"S": "A"},
        "due_at": {"S": "1"},
    }
    base, per_index = table.write_units(None, new)
    assert base == 1 and per_index == {"by-status": 1, "by-due": 1}  # a new item enters both indexes
    running = {**new, "status_key": {"S": "RUNNING#1"}}
    assert table.write_units(new, running)[1] == {"by-status": 2}  # key changed: delete + put; by-due untouched
    done = {k: v for k, v in running.items() if k != "sweep_pk"} | {"status_key": {"S": "COMPLETED#1"}}
    assert table.write_units(running, done)[1] == {"by-status": 2, "by-due": 1}  # leaves the sparse index
    big = {**done, "result": {"S": "x" * 3000}}
    assert table.write_units(done, big) == (3, {"by-status": 3})  # 3 KB item; ALL projection updated


def test_cost_of_a_flow_at_list_prices():
    calls = [Call("ApiFunction", "dynamodb", "PutItem", wru=2, gsi_wru=4), Call("ApiFunction", "sqs", "SendMessage")]
    flow = FlowResult("no callback", 2, calls * 2, {"ApiFunction": [9.2, 10.0]}, {"ApiFunction": 2})
    s = scenario("no callback", [flow], {"ApiFunction": 512})
    assert s.aws_requests == 2 and s.sqs_requests == 1 and s.dynamodb_requests == 1
    assert s.wru == 2 and s.wru_indexes == 4
    assert s.lambda_gb_seconds["ApiFunction"] == pytest.approx(0.010 * 0.5)  # 10 ms billed, rounded up, at 0.5 GB
    cost = s.cost_per_million()
    assert cost["DynamoDB writes"] == pytest.approx(6 * PRICES["dynamodb_per_million_wru"])
    assert cost["SQS"] == pytest.approx(0.40)
    assert cost["API Gateway"] == pytest.approx(1.00)
    assert cost["total"] == pytest.approx(sum(v for k, v in cost.items() if k != "total"), abs=0.02)


def test_request_counting_flow_on_moto():
    flows = Flows(10, stream_scale=30.0)
    results = flows.run()
    details: dict = {}
    rows = {r.key: r for r in bench_requests(results, flows.memory, details, quick=True)}
    base = details["requests"]["scenarios"]["no callback"]
    assert base["calls_per_task"]["dynamodb PutItem"] == 1
    assert base["calls_per_task"]["sqs SendMessage"] == 1
    assert base["calls_per_task"]["sqs ReceiveMessage"] == pytest.approx(0.1)  # one full batch of 10
    assert rows["requests.no callback"].ok is (base["aws_requests"] <= 5)
    callback = details["requests"]["scenarios"]["with callback"]
    assert callback["aws_requests"] > base["aws_requests"]
    assert callback["lambda_requests"]["NotifierFunction"] == pytest.approx(0.1)
    stream = details["requests"]["scenarios"]["30 s stream"]
    assert stream["calls_per_task"]["dynamodb GetItem"] >= 30  # ~2 polls per second for 30 s
    from infra.local.template import functions, load_template

    stream_gb = functions(load_template())["StreamFunction"].memory / 1024  # billed for the stream's whole life
    assert stream["lambda_gb_seconds"]["StreamFunction"] == pytest.approx(30 * stream_gb)
    assert all(v["cost_per_million_tasks_usd"]["total"] > 0 for v in details["requests"]["scenarios"].values())


def test_bundle_measure_leaves_out_the_runtime_sdk_and_bytecode(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_bytes(b"x" * 1000)
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"x" * 5000)
    for sdk in ("boto3", "botocore", "s3transfer", "boto3-1.0.dist-info"):
        (tmp_path / sdk).mkdir()
        (tmp_path / sdk / "big.py").write_bytes(b"x" * 9000)
    info = measure(tmp_path)
    assert info["bytes"] == 1000 and info["files"] == 1 and "zipped_mb" in info


def test_report_table_and_strict_json(tmp_path):
    report = Report({"quick": True})
    report.add(Row("a", "1 submit latency", "p50", 12.345, "ms", "<= 15 ms", at_most(12.345, 15), "cmd a"))
    report.add(Row("b", "2 throughput", "rate", float("nan"), "tasks/s", ">= 100 tasks/s", at_least(float("nan"), 100)))
    report.add(Row("c", "6 bundle size", "size", "not built"))
    table = report.markdown()
    assert "| 12.3 ms | <= 15 ms | met | `cmd a` |" in table
    assert "| n/a | >= 100 tasks/s | MISSED |" in table
    out = tmp_path / "results.json"
    report.write(out)
    data = json.loads(out.read_text())
    assert data["summary"] == {"met": 1, "missed": ["b"]}
    assert data["rows"][1]["value"] is None


def test_command_line_selection():
    assert cli.parse_args([]).selected == list(cli.ALL)
    assert cli.parse_args(["--no-load"]).selected == [n for n in cli.ALL if n != "load"]
    assert cli.parse_args(["--only", "cpu,cost"]).selected == ["requests", "throughput"]
    with pytest.raises(SystemExit):
        cli.parse_args(["--only", "nonsense"])


def test_hot_keys_of_a_task_sharded_and_before():
    from bench.billing import Index, TableSpec
    from bench.hotkeys import OLD_SPEC, old_view, partition_writes

    spec = TableSpec(
        "TasksTable",
        ("task_id",),
        (
            Index("by-owner-active", ("active_pk", "created_key"), "INCLUDE", ("name",)),
            Index("by-owner-done", ("done_pk", "created_key"), "INCLUDE", ("status", "name")),
            Index("by-due", ("sweep_pk", "due_at"), "KEYS_ONLY"),
        ),
    )
    put = {
        "task_id": {"S": "t"},
        "owner": {"S": "o"},
        "name": {"S": "sum"},
        "status": {"S": "PENDING"},
        "created_key": {"S": "1#t"},
        "active_pk": {"S": "o#03"},
        "sweep_pk": {"S": "ACTIVE#40"},
        "due_at": {"S": "2"},
    }
    claimed = {**put, "status": {"S": "RUNNING"}, "lease_expires_at": {"S": "9"}}
    done = {k: v for k, v in claimed.items() if k not in ("active_pk", "sweep_pk", "due_at")}
    done |= {"status": {"S": "COMPLETED"}, "done_pk": {"S": "o#03"}}
    assert partition_writes(spec, None, put) == {
        ("table", "t"): 1,
        ("by-owner-active", "o#03"): 1,
        ("by-due", "ACTIVE#40"): 1,
    }
    assert partition_writes(spec, put, claimed) == {("table", "t"): 1}  # the claim: no index
    assert partition_writes(spec, claimed, done) == {
        ("table", "t"): 1,
        ("by-owner-active", "o#03"): 1,
        ("by-due", "ACTIVE#40"): 1,
        ("by-owner-done", "o#03"): 1,
    }
    # the same writes before the shards: the owner and one ACTIVE key take them all
    before = partition_writes(OLD_SPEC, old_view(put), old_view(claimed))
    assert before == {("table", "t"): 1, ("by-owner", "o"): 1, ("by-owner-status", "o"): 2}
