"""earshot pipeline: the data contract, settings, enrichment and the Faust worker."""
