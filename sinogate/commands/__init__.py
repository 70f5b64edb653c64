"""Device commands: the per-protocol catalog, the queue and real-time service, reply matching,
the settings shadow and SMS texts."""
