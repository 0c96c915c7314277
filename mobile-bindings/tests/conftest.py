"""Shared set-up of the end-to-end tests through the generated Python bindings.

- ``dm``: the generated ``doran_mobile`` module. ``scripts/bindings`` builds the library
  and writes the bindings into the cargo target directory, or keeps them when they
  were generated from the same library.
- ``relay``: the real ``doran-server`` binary on a free loopback port (read from its
  first stdout line, ``listening on http://ADDR``), killed and restarted on demand.
- ``media``: recordings as the phones make them (Ogg/Opus: Android, M4A/AAC: iOS) and a
  camera-like JPEG, made with ffmpeg.
- ``Events``: an ``EventListener`` that hands events to the test's asyncio loop, and
  waits for the one it wants, with a timeout (never a sleep).
"""

import asyncio
import importlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay import Relay

ROOT = Path(__file__).resolve().parents[2]

# How long an expected event may take (reconnecting after the relay restarts waits
# for the backoff: a few seconds).
WAIT = 30.0


def cargo(*args):
    return subprocess.run(
        ["cargo", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def target_dir():
    meta = cargo("metadata", "--format-version", "1", "--no-deps", "--locked")
    return Path(json.loads(meta)["target_directory"])


@pytest.fixture(scope="session")
def dm():
    """The generated bindings, as an app would import them."""
    out = target_dir() / "bindings"
    subprocess.run([str(ROOT / "scripts" / "bindings"), str(out)], cwd=ROOT, check=True)
    sys.path.insert(0, str(out / "python"))
    return importlib.import_module("doran_mobile")


@pytest.fixture(scope="session")
def relay_binary():
    # `--workspace`: the features unified over the whole workspace, as the test build
    # has them. With `-p doran-server` cargo resolved other features and rebuilt the
    # relay and its dependencies (five minutes of a CI run from nothing).
    subprocess.run(
        ["cargo", "build", "--locked", "--workspace", "--bin", "doran-server"],
        cwd=ROOT,
        check=True,
    )
    return target_dir() / "debug" / "doran-server"


@pytest.fixture
def relay(relay_binary, tmp_path):
    r = Relay(relay_binary, tmp_path / "relay")
    yield r
    r.kill()


@dataclass
class Media:
    ogg: Path
    m4a: Path
    jpg: Path


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is missing: scripts/test installs it (apt-get install ffmpeg)")
    d = tmp_path_factory.mktemp("media")

    def make(name, *args):
        path = d / name
        subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *args, str(path)],
            check=True,
        )
        return path

    tone = lambda hz, secs: ["-f", "lavfi", "-i", f"sine=frequency={hz}:duration={secs}"]
    return Media(
        # Android's MediaRecorder (OGG output format): Opus in Ogg, 48 kHz mono.
        ogg=make("android.ogg", *tone(440, 2.5), "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-b:a", "32k"),
        # iOS AVAudioRecorder (kAudioFormatMPEG4AAC): AAC in M4A, 44.1 kHz mono.
        m4a=make("ios.m4a", *tone(660, 1.5), "-ac", "1", "-ar", "44100", "-c:a", "aac", "-b:a", "64k"),
        jpg=make("camera.jpg", "-f", "lavfi", "-i", "testsrc=size=2400x1800:rate=1", "-frames:v", "1", "-q:v", "2"),
    )


def make_events_class(dm):
    class Events(dm.EventListener):
        """Receives a device's events on the relay's threads and queues them for the
        test's loop."""

        def __init__(self, name):
            self.name = name
            self.loop = asyncio.get_running_loop()
            self.queue = asyncio.Queue()
            self.seen = []

        def on_event(self, event):
            try:
                self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
            except RuntimeError:
                pass  # the test's loop has ended; nobody waits any more

        async def wait_for(self, what, pick, timeout=WAIT):
            """The first event ``pick`` accepts (returns it), failing after ``timeout``.
            Events before it are consumed."""
            deadline = self.loop.time() + timeout
            while True:
                left = deadline - self.loop.time()
                try:
                    event = await asyncio.wait_for(self.queue.get(), max(left, 0))
                except asyncio.TimeoutError:
                    recent = "\n  ".join(repr(e) for e in self.seen[-10:])
                    raise AssertionError(
                        f"{self.name}: no {what} within {timeout}s; last events:\n  {recent}"
                    ) from None
                self.seen.append(event)
                if pick(event):
                    return event

    return Events


@pytest.fixture(scope="session")
def Events(dm):
    return make_events_class(dm)


# Devices and subscriptions a test opened, closed after it: no library thread may call
# into Python once the test's loop is gone (nor while the interpreter exits).
OPENED = []


@pytest.fixture(autouse=True)
def close_devices():
    yield
    while OPENED:
        thing = OPENED.pop()
        if hasattr(thing, "cancel"):
            thing.cancel()
        else:
            asyncio.run(thing.close())
