"""Looking inside trained networks: filters, neighbours, predictions, curves."""
