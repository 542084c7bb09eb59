"""Protobuf: schemas and framing, the wire format, the key/value decoder and the stream writers."""
