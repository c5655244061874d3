"""`Board`: the interface every port's board implements, stated as code. Its own module so
the port modules (through hal._mcu) can subclass it without importing the package that
chooses between them."""


class Board:
    """What firmware logic may ask of a board. Methods with a sensible default are implemented
    here; the others raise NotImplementedError until a port provides them."""

    name = "board"  # "virtual" | "esp32" | "rp2"

    async def start(self):
        """Bring up what the board needs. Never raises because the network is missing or down:
        a Wi-Fi connection is attempted, not awaited."""

    def background(self):
        """Coroutines the board needs running."""
        return []

    def adc(self, rate, block_len, pins=None):
        """-> AdcSource: start(); async read() -> memoryview of block_len int16 samples (valid
        until the next read); overruns (blocks lost because the reader was late, a small int);
        rate; nch; ring. pins: the GPIO of each mains channel (None items: the board's default
        for that channel); with two or more, every tick samples each channel in turn and a block
        interleaves them (block_len ticks, nch samples each)."""
        raise NotImplementedError

    def contacts(self):
        """-> Contacts: read() -> int bitmask of input lines (bit n = line n, 1 = high / contact
        closed); lines."""
        raise NotImplementedError

    def outputs(self):
        """-> Outputs: set(line, level); get(line); lines."""
        raise NotImplementedError

    def uart(self, baud, second=False):
        """-> Uart: async write(bytes); async read_until(term, timeout_ms) -> bytes or None;
        flush_input(). read_until never blocks the event loop. second: the board's second UPS
        UART (a second Q1 UPS, one per feed; docs/wiring.md)."""
        raise NotImplementedError

    def network_state(self):
        """"up" | "down" | "absent" (no network/socket module on this image)."""
        return "absent"

    def network_up(self):
        return self.network_state() == "up"

    def ip(self):
        return "0.0.0.0"

    def nut_bind(self):
        """(host, port) the NUT server listens on."""
        raise NotImplementedError

    def watchdog_start(self, timeout_ms):
        raise NotImplementedError

    def watchdog_feed(self):
        raise NotImplementedError

    def watchdog_park(self):
        """Called when the firmware is interrupted to the REPL: keep a developer's mpremote
        session from being reset by the watchdog."""

    def time(self):
        """Wall clock (RTC), seconds since 1970."""
        raise NotImplementedError

    def set_time(self, epoch):
        raise NotImplementedError

    def reset_cause(self):
        """"power_on" | "soft" | "hard" | "wdt" | "crash" | "unknown". A reset the firmware
        asked for (reset()) reads "hard", never as a crash."""
        return "unknown"

    def unique_id(self):
        """Hex string identifying this board (host logs are kept per board)."""
        raise NotImplementedError

    def reset(self):
        """Does not return."""
        raise NotImplementedError

    def hello(self, info):
        """Report to a supervising host (the virtual board sends it over its wire)."""

    def heartbeat(self, info):
        """Progress report to a supervising host."""
