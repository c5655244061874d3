# The composition root: read the config, build the board's HAL and the tasks, and run.
# A Ctrl-C from the console (mpremote) interrupts it into the REPL, as on any MicroPython board.
import sentinel.app

sentinel.app.main()
