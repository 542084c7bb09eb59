"""Parquet: input files, the footer codec, page reading, the column-chunk splice and the encoder."""
