"""taskrunner: a serverless asynchronous task API (API, worker, notifier, stream)."""
