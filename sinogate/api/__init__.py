"""The HTTP API: flespi-shaped REST routes, live Server-Sent Events and track exports."""
