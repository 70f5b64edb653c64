"""Several gateway nodes on one PostgreSQL store, coordinated through NATS JetStream.

``node.py`` is the node's link to NATS: its liveness, the device→node map, requests to another
node and broadcasts (the command service reaches the node holding a device through it).
``member.py`` takes a device over from the node it was on and lets it go; ``relay.py`` carries
live events between nodes. docs/architecture.md, "Several nodes", tells what lives where and why.
"""
