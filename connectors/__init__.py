"""Connectors: pull or receive mentions from platforms, normalise them, publish to Kafka."""
