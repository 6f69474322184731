"""earshot's HTTP API (FastAPI): search, trends, health."""
