"""The gateway's own web endpoints (snapshots, health); one aiohttp application."""
