"""Signaling: the WebSocket protocol that joins participants to a live hearing and runs it."""
