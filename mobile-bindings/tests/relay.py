"""The real relay, as the end-to-end tests and the measurement start it: `doran-server`
on a free loopback port, its address read from its first stdout line
(`listening on http://ADDR`), like `testkit/src/lib.rs`."""

import os
import subprocess
import threading


class Relay:
    """A ``doran-server`` process; SIGKILLed by ``kill`` and at the end of the test."""

    def __init__(self, binary, data):
        self.binary = binary
        self.data = data
        self.proc = None
        self.addr = None
        self._start("127.0.0.1:0")

    def _start(self, listen):
        log = open(f"{self.data}.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.binary), "--data-dir", str(self.data), "--listen", listen],
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "DORAN_LOG": "warn"},
        )
        log.close()
        line = self.proc.stdout.readline().decode().strip()
        prefix = "listening on http://"
        if not line.startswith(prefix):
            self.kill()
            raise RuntimeError(f"the relay did not start (first line {line!r})")
        self.addr = line[len(prefix) :]
        # Nothing else is expected on stdout; drain it so the relay never blocks.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    @property
    def url(self):
        return f"http://{self.addr}"

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self):
        """Starts it again on the same data and address."""
        self.kill()
        self._start(self.addr)
