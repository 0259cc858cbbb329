"""Benchmarks of the design budgets: ``python -m bench`` (``make bench``).

One run starts its own local stack(s), measures submit latency, throughput, CPU per task,
live-status latency, cold starts, bundle sizes and billed AWS requests (with the cost per
million tasks), prints a Markdown table and writes ``bench-results.json``.
"""
