"""Applying an `ExportPlan` to rows: column splits, key/value routing,
detectors, value tables, tokens."""
