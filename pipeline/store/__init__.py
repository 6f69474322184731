"""Elasticsearch: the mappings, the mention sink, the hourly rollup, retention, erasure, triage
state and the stored listening queries."""
