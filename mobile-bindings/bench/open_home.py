"""How long a phone takes from a cold start to the home screen, through the bindings.

    scripts/bindings build/bindings-release --release
    cargo build -p doran-server        # the relay only serves the set-up; not timed
    python3 mobile-bindings/bench/open_home.py build/bindings-release target/debug/doran-server

Sets up a device with a family (two members, a few months of missions, events, photos
and voice messages, synced to a real relay), then, in fresh processes as an app start
would, times: loading the library (import), `Device.open` (with background sync on,
as apps open it), and the first and a second `home`. Prints the median and the range
over the runs, and the figures as JSON last.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from relay import Relay  # noqa: E402

MISSIONS, EVENTS, PHOTOS, VOICES = 60, 30, 30, 10


def ffmpeg(out, *args):
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(out)], check=True
    )
    return out


async def set_up(dm, relay, work):
    """A family of two with MISSIONS missions, EVENTS events, PHOTOS photos and VOICES
    voice messages; returns the family id."""
    opts = dm.DeviceOptions(locale="ko-KR")
    mom = await dm.Device.open(str(work / "mom"), opts, None)
    son = await dm.Device.open(str(work / "son"), opts, None)
    await mom.create_account(relay.url, "mom@example.com", "엄마곰")
    await son.create_account(relay.url, "son@example.com", "아들곰")
    family = await mom.create_family("우리 가족", "엄마")
    invite = await mom.invite(family, "son@example.com", "아들")
    await son.answer_invite(invite.invite, True)
    await mom.sync_now(20_000)
    for i in range(MISSIONS):
        m = await mom.add_mission(family, dm.MissionInput(title=f"미션 {i}"))
        if i % 2 == 0:
            await mom.set_mission_done(family, m, True)
    for i in range(EVENTS):
        day = 1 + i % 28
        await mom.add_event(family, dm.EventInput(title=f"일정 {i}", start=f"2026-12-{day:02}"))
    album = await mom.create_album(family, "사진첩")
    for i in range(PHOTOS):
        jpg = ffmpeg(work / f"p{i}.jpg", "-f", "lavfi", "-i",
                     f"testsrc=size=1600x1200:rate=1:decimals={i % 3}", "-frames:v", "1")
        await mom.add_photo(family, album, str(jpg), f"사진 {i}")
    voices = await mom.create_voice_album(family, "목소리", 1)
    ogg = ffmpeg(work / "v.ogg", "-f", "lavfi", "-i", "sine=frequency=440:duration=20",
                 "-ac", "1", "-c:a", "libopus")
    for i in range(VOICES):
        await mom.add_voice(family, voices, str(ogg), f"목소리 {i}")
    report = await mom.sync_now(60_000)
    assert report.up_to_date, report
    # The son's phone, whose cold starts are timed, has it all.
    report = await son.sync_now(60_000)
    assert report.up_to_date, report
    mom.stop_sync()
    son.stop_sync()
    return family


def child(bindings, home, family):
    """One cold start: import, open, home, home."""
    t0 = time.perf_counter()
    sys.path.insert(0, str(Path(bindings) / "python"))
    import doran_mobile as dm

    t1 = time.perf_counter()

    async def run():
        device = await dm.Device.open(home, dm.DeviceOptions(locale="ko-KR"), None)
        t2 = time.perf_counter()
        first = await device.home(family)
        t3 = time.perf_counter()
        await device.home(family)
        t4 = time.perf_counter()
        assert first.family_name == "우리 가족"
        return t2, t3, t4

    t2, t3, t4 = asyncio.run(run())
    ms = lambda a, b: round((b - a) * 1000, 2)
    print(json.dumps({
        "import_ms": ms(t0, t1),
        "open_ms": ms(t1, t2),
        "first_home_ms": ms(t2, t3),
        "open_to_home_ms": ms(t1, t3),
        "home_again_ms": ms(t3, t4),
    }))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bindings")
    p.add_argument("relay_binary")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--child", nargs=2, metavar=("HOME", "FAMILY"))
    a = p.parse_args()
    if a.child:
        child(a.bindings, *a.child)
        return
    sys.path.insert(0, str(Path(a.bindings) / "python"))
    import doran_mobile as dm

    lib = next((Path(a.bindings) / "python").glob("libdoran_mobile.*"))
    work = Path(tempfile.mkdtemp(prefix="doran-open-home-"))
    relay = Relay(Path(a.relay_binary), work / "relay")
    try:
        started = time.perf_counter()
        family = asyncio.run(set_up(dm, relay, work))
        print(f"set up {MISSIONS} missions, {EVENTS} events, {PHOTOS} photos, {VOICES} "
              f"voice messages in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        runs = []
        for _ in range(a.runs):
            out = subprocess.run(
                [sys.executable, __file__, a.bindings, a.relay_binary,
                 "--child", str(work / "son"), family],
                check=True, capture_output=True, text=True,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        relay.kill()
        shutil.rmtree(work, ignore_errors=True)
    summary = {"library": lib.name, "library_bytes": os.path.getsize(lib), "runs": a.runs}
    for key in runs[0]:
        values = [r[key] for r in runs]
        summary[key] = {"median": statistics.median(values), "min": min(values),
                        "max": max(values)}
        print(f"{key:>16}: median {statistics.median(values):8.2f} ms "
              f"(min {min(values):.2f}, max {max(values):.2f})")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
