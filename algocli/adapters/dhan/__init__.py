"""Dhan (DhanHQ v2) adapter."""
