#!/bin/sh
# StreamFunction's entry: Lambda Web Adapter forwards the Function URL's requests to uvicorn.
PATH=$PATH:$LAMBDA_TASK_ROOT/bin PYTHONPATH=$PYTHONPATH:/opt/python:$LAMBDA_RUNTIME_DIR \
  exec python -m uvicorn --host 127.0.0.1 --port "${PORT:-8080}" --no-access-log --log-level warning taskrunner.entrypoints.stream:app
