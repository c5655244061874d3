"""pyserial URL handlers of Power Sentinel (pyserial imports `<package>.protocol_<scheme>`).
`virtual://DIR` is the console of the virtual board running in DIR; see ports.py."""
