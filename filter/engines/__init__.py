"""Engines: run a split of a batch, locally on Parquet or protobuf input, or on Ray."""
