"""Benchmarks for vtx: synthetic fleet-log generators (Parquet and protobuf) and runners."""
