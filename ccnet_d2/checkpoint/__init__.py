"""Converters for published weights."""
