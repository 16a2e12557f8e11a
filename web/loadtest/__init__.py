"""`tingshen loadtest`: many signaling clients (and aiortc media clients) against a server.

The tool schedules hearings through the REST API with the admin token, invites participants,
and connects one WebSocket per participant speaking protocol version 1 (docs/signaling.md):
`join`, then answer the server's WebSocket heartbeats, send an occasional `ping`, and keep
the seat. With media every participant is admitted and answers the server's offers with an
aiortc peer that sends looped speech (or a tone) and a small test card, counting the frames
it receives.

Bounded: at most `max_clients` clients, each join within `join_timeout_s`, held for
`duration_s`; at the end every client leaves, every task is cancelled and awaited, and the
hearings are cancelled (or closed, when they were put in session) so the server is left clean.

Signaling only, participants wait in the lobby (`auto_admit` off, no judge or clerk): an
admitted participant gets a server-side peer connection (UDP sockets, ICE gathering), which
is media, not signaling.
"""
