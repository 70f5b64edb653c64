"""Several gateway nodes on one PostgreSQL store, coordinated through NATS JetStream.

``node.py`` is the node's link to NATS: its liveness, the device→node map, requests to another
node and broadcasts. ``relay.py`` carries live events between nodes; ``routing.py`` lets the
command service reach the node that holds a device's connection. docs/architecture.md, "Several
nodes", tells what lives where and why.
"""
