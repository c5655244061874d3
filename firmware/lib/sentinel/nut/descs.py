# Descriptions upsd takes from its cmdvartab, for the names this product serves; others answer
# "Description unavailable" exactly as upsd does. Only GET DESC / GET CMDDESC need them, which
# upsmon never sends: the server imports this module for such a request and drops it again, so
# the tables are not on the device's heap the rest of the time.
VAR_DESC = {
    "ups.status": "UPS status",
    "ups.alarm": "UPS alarms",
    "ups.mfr": "UPS manufacturer",
    "ups.model": "UPS model",
    "ups.load": "Load on UPS (percent of full)",
    "ups.delay.shutdown": "Interval to wait after shutdown with delay command (seconds)",
    "ups.delay.start": "Interval to wait before (re)starting the load (seconds)",
    "input.voltage": "Input voltage (V)",
    "input.voltage.nominal": "Nominal input voltage (V)",
    "input.frequency": "Input line frequency (Hz)",
    "input.frequency.nominal": "Nominal input line frequency (Hz)",
    "output.voltage": "Output voltage (V)",
    "battery.charge": "Battery charge (percent of full)",
    "battery.charge.low": "Remaining battery level when UPS switches to LB (percent)",
    "battery.voltage": "Battery voltage (V)",
    "battery.runtime": "Battery runtime (seconds)",
    "battery.runtime.low": "Remaining battery runtime when UPS switches to LB (seconds)",
    "driver.name": "Driver name",
    "driver.version": "Driver version - NUT release",
    "driver.version.internal": "Internal driver version",
    "sentinel.grace": "Time on battery before the sentinel starts the shutdown (seconds)",
}

CMD_DESC = {
    "load.off": "Turn off the load immediately",
    "load.on": "Turn on the load immediately",
    "shutdown.return": "Turn off the load and return when power is back",
    "shutdown.stayoff": "Turn off the load and remain off",
    "shutdown.stop": "Stop a shutdown in progress",
    "test.battery.start.quick": "Start a quick battery test",
    "test.battery.start.deep": "Start a deep battery test",
    "test.battery.stop": "Stop the battery test",
    "sentinel.drill.start": "Rehearse the shutdown plan (no FSD, no load-off)",
    "sentinel.drill.stop": "End a drill",
    "beeper.toggle": "Toggle the UPS beeper",
}
