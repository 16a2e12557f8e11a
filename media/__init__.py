"""Media: per-participant WebRTC peers, encoded forwarding between them, and the audio tap."""
