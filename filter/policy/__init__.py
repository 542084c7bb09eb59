"""Policy: the catalogue, its patterns and vocabularies, catalogue diffs, and the
`ExportPlan` compiled from them."""
