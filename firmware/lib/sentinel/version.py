# The host refuses to talk to a firmware whose PROTOCOL differs from its own (see host link).
VERSION = "0.1.0"
PROTOCOL = 1
