"""Crisis alerts: the spike detector, a brand's incidents, their explanation, the watcher app,
the alert records, their store and state, and webhook delivery."""
