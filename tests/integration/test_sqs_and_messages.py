import json

from taskrunner.adapters.dynamodb_messages import DynamoDbMessageStore
from taskrunner.adapters.sqs_queue import SqsTaskQueue
from taskrunner.domain.models import Message

from tests.unit.factories import a_task


def receive(sqs, url, **kw):
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], **kw).get("Messages", [])


def test_queue_routing_and_message_body(aws):
    sqs = aws.session.client("sqs")
    queue = SqsTaskQueue(
        sqs,
        {"default": aws.ref("TasksQueue"), "io": aws.ref("IoTasksQueue")},
        aws.ref("CallbacksQueue"),
        priority_queue_url=aws.ref("PriorityTasksQueue"),
    )
    queue.enqueue(a_task(task_id="a"))
    queue.enqueue(a_task(task_id="b", queue="io"))
    queue.enqueue(a_task(task_id="c", priority=True))
    queue.enqueue_callback("a")
    body = json.loads(receive(sqs, aws.ref("TasksQueue"))[0]["Body"])
    assert body == {"task_id": "a", "owner": "default", "created_at": "2026-11-19T09:00:00.000Z", "timeout": "60"}
    assert json.loads(receive(sqs, aws.ref("IoTasksQueue"))[0]["Body"])["task_id"] == "b"
    assert json.loads(receive(sqs, aws.ref("PriorityTasksQueue"))[0]["Body"])["task_id"] == "c"
    assert json.loads(receive(sqs, aws.ref("CallbacksQueue"))[0]["Body"]) == {"task_id": "a"}


def test_delay_and_change_visibility(aws):
    sqs = aws.session.client("sqs")
    queue = SqsTaskQueue(sqs, {"default": aws.ref("TasksQueue")}, aws.ref("CallbacksQueue"))
    queue.enqueue(a_task(task_id="later"), delay_seconds=60)
    assert receive(sqs, aws.ref("TasksQueue")) == []
    queue.enqueue(a_task(task_id="now"))
    message = receive(sqs, aws.ref("TasksQueue"))[0]
    queue.change_visibility(aws.physical["TasksQueue"]["Arn"], message["ReceiptHandle"], 0)
    again = receive(sqs, aws.ref("TasksQueue"))
    assert again and again[0]["Attributes"]["ApproximateReceiveCount"] == "2"


def test_message_store_lists_newest_first(aws):
    store = DynamoDbMessageStore(aws.session.client("dynamodb"), aws.ref("MessagesTable"))
    for i in range(3):
        store.add(Message(f"2026-11-19T09:00:0{i}.000Z#{i}", "default", f"m{i}", "t", f"2026-11-19T09:00:0{i}.000Z"))
    first, cursor = store.list("default", limit=2, cursor=None)
    assert [m.content for m in first] == ["m2", "m1"] and cursor
    rest, _ = store.list("default", limit=2, cursor=cursor)
    assert [m.content for m in rest] == ["m0"]
