"""Broker adapters. Each broker package has the same files: http, websocket, parsing,
data, execution, instruments (the last three filled in as capabilities arrive)."""
