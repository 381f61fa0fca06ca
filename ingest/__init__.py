"""Ingest: transports (MQTT), decoding, handling and batching of device messages."""
