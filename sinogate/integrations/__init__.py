"""Integrations: what carries sinogate's data to other systems, all as after-commit publishers,
session listeners or bus subscribers wired by the composition root.

- ``mqtt``: the MQTT bridge in flespi's topic layout (messages, retained telemetry and connection
  state, command lifecycle, events, intervals; inbound commands), with a bounded queue so a dead
  broker never slows ingest; ``topics`` names the topics; ``homeassistant`` builds the Home
  Assistant MQTT discovery configs.
- ``notifications``: rules (event types × devices × filter → targets) kept in the key-value
  store; ``targets`` delivers to webhooks (HMAC-signed), Apprise URLs and MQTT topics with
  retries, backoff and a dead-letter list.
- ``metrics``: Prometheus metrics of the process.
"""
