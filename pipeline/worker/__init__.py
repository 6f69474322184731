"""The mention worker: its Faust app (topics, agents), what both Faust apps share, dead letters, retry."""
