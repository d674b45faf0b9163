"""Upstox (API v2/v3) adapter."""
