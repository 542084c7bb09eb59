"""Audit: verification of published outputs and the HTML report."""
