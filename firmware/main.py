# Runs after boot.py: hands over to the composition root (sentinel.app), which reads the config,
# builds the board's HAL and the tasks, and runs. A Ctrl-C from the console (mpremote)
# interrupts it into the REPL, as on any MicroPython board.
import sentinel.app

sentinel.app.main()
