"""The results: the store's records and files, reading runs, logs and model-zoo rows in (harvest), which
runs count, and the exported tables."""
