"""Bringing history from elsewhere: a Traccar database (``traccar``) and raw captures (``logs``).

Importers are API clients: they read their source, turn it into sinogate's messages, devices and
geofences (pure functions here), and write them through the running server's REST API
(``sinogate import`` in ``sinogate.cli.importer``), so imported messages take the one ingest path
(pipeline, dedup by device content, events) like a tracker's.
"""
