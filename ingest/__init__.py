"""Ingest: MQTT transport, decoding, handling and batching of device messages."""
