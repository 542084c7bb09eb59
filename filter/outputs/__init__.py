"""What a run writes and how it is published: part files, manifests,
signatures, atomic publishing."""
