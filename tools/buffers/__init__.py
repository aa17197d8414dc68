"""Buffers: the durable write engine, the flusher that hands batches to a sink, live status."""
