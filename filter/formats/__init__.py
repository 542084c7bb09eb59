"""Byte formats vtx reads and writes itself: Parquet and protobuf."""
