"""vtx tests."""
