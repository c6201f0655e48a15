"""The record layer: the typed decision record, what it may keep (redaction), and how shared state fails open.

Below every package that writes or reads records (gateway, store, tracing, learning, closed_loop), so none of
them imports the gateway to know what a record is.
"""
