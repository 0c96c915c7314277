"""Two phones through the generated Python bindings — the same library and API the
Kotlin and Swift apps get — against the real relay binary.

Each test drives its own relay and two devices (mom's and her son's), waits for the
events the devices' listeners receive, and never sleeps to synchronise.
"""

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import OPENED

WAIT_SYNC_MS = 20_000


@dataclass
class Family:
    mom: object
    son: object
    mom_events: object
    son_events: object
    mom_listener: object
    son_listener: object
    family: str


def changed(dm, part, family=None):
    """Picks a change to `part` that came from the other device."""

    def pick(e):
        return (
            isinstance(e, dm.DeviceEvent.FAMILY_CHANGED)
            and not e.local
            and part in e.parts
            and (family is None or e.family == family)
        )

    return pick


def sync_is(dm, status):
    def pick(e):
        return isinstance(e, dm.DeviceEvent.SYNC) and e.state.status == status and (
            status != dm.SyncStatus.UP_TO_DATE or e.state.pending == 0
        )

    return pick


async def open_device(dm, home, locale="ko-KR"):
    device = await dm.Device.open(str(home), dm.DeviceOptions(locale=locale), None)
    OPENED.append(device)
    return device


def listen(device, events):
    handle = device.listen(events)
    OPENED.append(handle)
    return handle


async def family_of_two(dm, Events, relay, tmp_path):
    """Step 1–3 of every test: two accounts, mom's family, her invite, his accept."""
    mom = await open_device(dm, tmp_path / "mom")
    son = await open_device(dm, tmp_path / "son")
    mom_events, son_events = Events("mom"), Events("son")
    mom_listener = listen(mom, mom_events)
    son_listener = listen(son, son_events)

    # Step 1: each creates an account on their own phone.
    me = await mom.create_account(relay.url, "mom@example.com", "엄마곰")
    assert me.nickname == "엄마곰" and me.has_recovery_phrase
    assert len(mom.recovery_phrase().split()) == 24
    him = await son.create_account(relay.url, "son@example.com", "아들곰")

    # Step 2: mom creates a family and invites her son, who gets it live.
    family = await mom.create_family("우리 가족", "엄마")
    sent = await mom.invite(family, "son@example.com", "아들")
    assert sent.invitee == him.user
    got = await son_events.wait_for(
        "the invite", lambda e: isinstance(e, dm.DeviceEvent.INVITE_RECEIVED)
    )
    assert got.invite.invite == sent.invite
    assert got.invite.text == "엄마 님이 '우리 가족' 가족에 아들로 초대했어요."

    # Step 3: he accepts; mom's phone sees him join.
    assert await son.answer_invite(sent.invite, True) == family
    await mom_events.wait_for("the son's member entry", changed(dm, dm.Part.MEMBERS, family))
    view = await mom.family(family)
    assert [m.name for m in view.members] == ["엄마", "아들"]
    assert view.members[0].role == dm.Role.HOST
    return Family(mom, son, mom_events, son_events, mom_listener, son_listener, family)


def is_mp3(path):
    head = Path(path).read_bytes()[:3]
    return head == b"ID3" or (head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


async def everything_arrives(dm, Events, relay, media, tmp_path):
    f = await family_of_two(dm, Events, relay, tmp_path)
    mom, son, family = f.mom, f.son, f.family

    # Step 4: mom adds a mission; it appears on the son's phone; he ticks it there and
    # mom's phone gets the tick.
    mission = await mom.add_mission(
        family, dm.MissionInput(title="가족 사진 찍기", participants=["엄마", "아들"])
    )
    await f.son_events.wait_for("the mission", changed(dm, dm.Part.MISSIONS, family))
    cards = (await son.missions(family, None)).month.missions
    assert [c.id for c in cards] == [mission]
    await son.set_mission_done(family, mission, True)
    await f.mom_events.wait_for("the son's tick", changed(dm, dm.Part.MISSIONS, family))
    card = (await mom.missions(family, None)).month.missions[0]
    ticks = {t.name: t.done_at for t in card.ticks}
    assert ticks["아들"] is not None and ticks["엄마"] is None

    # Step 5: voice messages recorded on Android (Ogg/Opus) and on iOS (M4A/AAC),
    # converted to MP3 on mom's phone; each arrives on the son's.
    album = await mom.create_voice_album(family, "우리 목소리", 1)
    await f.son_events.wait_for("the voice album", changed(dm, dm.Part.VOICE, family))
    from_android = await mom.add_voice(family, album, str(media.ogg), "안드로이드")
    assert abs(from_android.duration_ms - 2500) < 100, from_android
    await f.son_events.wait_for("the Ogg/Opus message", changed(dm, dm.Part.VOICE, family))
    from_ios = await mom.add_voice(family, album, str(media.m4a), "아이폰")
    assert abs(from_ios.duration_ms - 1500) < 100, from_ios
    await f.son_events.wait_for("the M4A message", changed(dm, dm.Part.VOICE, family))

    # Step 6: a photo from mom's camera roll, prepared on her phone.
    photos = await mom.create_album(family, "여름")
    await f.son_events.wait_for("the photo album", changed(dm, dm.Part.GALLERY, family))
    photo = await mom.add_photo(family, photos, str(media.jpg), "바닷가에서")
    await f.son_events.wait_for("the photo", changed(dm, dm.Part.GALLERY, family))
    report = await mom.sync_now(WAIT_SYNC_MS)
    assert report.up_to_date and report.pending_blobs == 0, report

    # The son's phone has all of it: the messages play from MP3 files...
    voices = await son.voices(family, None)
    assert sorted(v.title for v in voices) == ["아이폰", "안드로이드"]
    for v in voices:
        assert v.by_name == "엄마" and v.duration_ms > 1000 and len(v.peaks) > 0
        assert is_mp3(await son.voice_file(family, v.id))
    # ...the photo shows, as a thumbnail in the grid (a placeholder first if its bytes
    # are still coming, then the BlobArrived event) and full size in the viewer.
    detail = await son.photo(family, photo)
    assert detail.caption == "바닷가에서" and detail.by_name == "엄마"
    assert max(detail.width, detail.height) <= 1920
    thumb = await son.photo_file(family, photo, True)
    if thumb is None:
        await f.son_events.wait_for(
            "the thumbnail",
            lambda e: isinstance(e, dm.DeviceEvent.BLOB_ARRIVED)
            and e.hash == detail.photo.thumb,
        )
        thumb = await son.photo_file(family, photo, True)
    assert Path(thumb).read_bytes()[:2] == b"\xff\xd8"
    full = Path(await son.fetch_photo(family, photo, False)).read_bytes()
    assert full[:2] == b"\xff\xd8" and len(full) < 950_000
    # ...and the home screen sums it up.
    home = await son.home(family)
    assert home.family_name == "우리 가족"
    assert home.mission is not None and home.mission.id == mission
    assert home.latest_photo is not None and home.latest_photo.id == photo
    assert home.latest_voice is not None and home.latest_voice.id == from_ios.id
    assert home.latest_voice.headline == "엄마님이 음성메시지를 보냈어요!"


def test_the_other_phone_sees_every_change(dm, Events, relay, media, tmp_path):
    asyncio.run(everything_arrives(dm, Events, relay, media, tmp_path))


async def offline_then_up_to_date(dm, Events, relay, tmp_path):
    f = await family_of_two(dm, Events, relay, tmp_path)

    # The relay dies: mom's phone says offline; an edit is kept and queued.
    relay.kill()
    await f.mom_events.wait_for("offline", sync_is(dm, dm.SyncStatus.OFFLINE))
    assert f.mom.sync_state().status == dm.SyncStatus.OFFLINE
    mission = await f.mom.add_mission(f.family, dm.MissionInput(title="장보기"))
    assert f.mom.sync_state().pending >= 1

    # It comes back on the same address: both phones reconnect by themselves, mom's
    # says up to date, and the edit made offline reaches the son.
    relay.restart()
    await f.mom_events.wait_for("up to date", sync_is(dm, dm.SyncStatus.UP_TO_DATE))
    await f.son_events.wait_for("the offline edit", changed(dm, dm.Part.MISSIONS, f.family))
    cards = (await f.son.missions(f.family, None)).month.missions
    assert mission in [c.id for c in cards]


def test_relay_restart_offline_then_up_to_date(dm, Events, relay, tmp_path):
    asyncio.run(offline_then_up_to_date(dm, Events, relay, tmp_path))


async def typed_errors(dm, Events, relay, media, tmp_path):
    # No account yet: the error says so, in the locale's language.
    fresh = await open_device(dm, tmp_path / "fresh", "en-US")
    with pytest.raises(dm.DoranError.NoAccount) as no_account:
        await fresh.families()
    assert str(no_account.value).startswith("There is no account"), str(no_account.value)

    f = await family_of_two(dm, Events, relay, tmp_path)
    # A title too long: the typed error, its message ready for the screen (Korean,
    # the user's language, naming the field); nothing was saved.
    with pytest.raises(dm.DoranError.InvalidInput) as too_long:
        await f.mom.add_mission(f.family, dm.MissionInput(title="가" * 18))
    message = str(too_long.value)
    assert isinstance(too_long.value, dm.DoranError)
    assert "미션 제목" in message and "17자" in message, message
    assert (await f.mom.missions(f.family, None)).month.total == 0
    # Nobody with that email; a family that is not the user's; a file that is no
    # recording.
    with pytest.raises(dm.DoranError.NoSuchUser):
        await f.mom.invite(f.family, "nobody@example.com", "삼촌")
    with pytest.raises(dm.DoranError.UnknownFamily):
        await f.mom.home("남의 가족")
    album = await f.mom.create_voice_album(f.family, "목소리", 2)
    with pytest.raises(dm.DoranError.BadAudio):
        await f.mom.add_voice(f.family, album, str(media.jpg), "사진")
    # The relay gone (once the phone knows it): a relay call says offline at once, and
    # that edits are kept.
    relay.kill()
    await f.mom_events.wait_for("offline", sync_is(dm, dm.SyncStatus.OFFLINE))
    with pytest.raises(dm.DoranError.Offline) as offline:
        await f.mom.invites()
    assert "저장되어" in str(offline.value), str(offline.value)


def test_errors_are_typed_and_readable(dm, Events, relay, media, tmp_path):
    asyncio.run(typed_errors(dm, Events, relay, media, tmp_path))


async def safety_codes(dm, Events, relay, tmp_path):
    f = await family_of_two(dm, Events, relay, tmp_path)
    # Both phones show the same sixty digits for each other.
    on_moms = await f.mom.safety_code(f.family, "아들")
    on_sons = await f.son.safety_code(f.family, "엄마")
    assert on_moms.code == on_sons.code
    assert len(on_moms.groups) == 12 and not on_sons.verified
    # A digit read wrong: the typed mismatch, nothing marked.
    wrong = ("1" if on_moms.code[0] != "1" else "2") + on_moms.code[1:]
    with pytest.raises(dm.DoranError.SafetyCodeMismatch):
        await f.son.verify_safety_code(f.family, "엄마", wrong)
    # The digits mom's phone shows: her son's phone marks her verified.
    checked = await f.son.verify_safety_code(f.family, "엄마", on_moms.code)
    assert checked.verified
    view = await f.son.family(f.family)
    assert [(m.name, m.verified) for m in view.members] == [("엄마", True), ("아들", False)]
    # A family made on a phone is sealed from its start: sealing it again changes
    # nothing, and only the host may ask.
    assert view.sealed
    assert await f.mom.seal_family(f.family) is False
    with pytest.raises(dm.DoranError.Forbidden):
        await f.son.seal_family(f.family)


def test_members_compare_safety_codes(dm, Events, relay, tmp_path):
    asyncio.run(safety_codes(dm, Events, relay, tmp_path))
