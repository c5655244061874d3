# NUT (Network UPS Tools) server for the sentinel: protocol.py (line splitting, reply formats),
# auth.py (password hashes, failed-login limiter), server.py (asyncio server, per-tier UPSes).
