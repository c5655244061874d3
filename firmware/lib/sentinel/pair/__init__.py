# Pair mode: two sentinels watching each other over an authenticated UDP link (docs/redundancy.md).
# frame: the wire format, its HMAC and the replay window; peer: the peer's liveness (UNKNOWN,
# ALIVE, DEAD and why) and its last view; link: the task that sends heartbeats and reads the
# socket. The package is imported only when pair.enabled (device heap: boards without ROMFS
# hold every imported module's bytecode in RAM).
