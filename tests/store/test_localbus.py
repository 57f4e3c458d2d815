"""The SQLite processes' bus (store/localbus.py) with real Unix datagram sockets."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from mssante.store.changes import CHANNEL, ChangeHub
from mssante.store.localbus import MAX_SOCKET_PATH, LocalBus


async def _until(predicate: object, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "nothing arrived"
        await asyncio.sleep(0.01)


async def test_news_reaches_every_other_process_and_not_the_sender(tmp_path: Path) -> None:
    heard: dict[str, list[tuple[str, str]]] = {"a": [], "b": [], "c": []}
    buses = {name: LocalBus(tmp_path / "bus", f"{name}" * 16,
                            lambda ch, p, name=name: heard[name].append((ch, p)))
             for name in heard}
    for bus in buses.values():
        bus.start()
    try:
        buses["a"].send("mssante_folders", "x:1,2")
        await _until(lambda: heard["b"] and heard["c"])
        assert heard["b"] == heard["c"] == [("mssante_folders", "x:1,2")]
        assert heard["a"] == []
    finally:
        for bus in buses.values():
            bus.stop()
    assert os.listdir(tmp_path / "bus") == []  # each removed its own socket


async def test_a_dead_process_socket_is_removed_by_the_next_sender(tmp_path: Path) -> None:
    directory = tmp_path / "bus"
    bus = LocalBus(directory, "a" * 16, lambda ch, p: None)
    bus.start()
    dead = directory / f"{'d' * 16}.sock"
    orphan = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    orphan.bind(str(dead))
    orphan.close()  # as a process killed with -9 leaves it
    try:
        bus.send("mssante_folders", "x:1")
        assert not dead.exists()
    finally:
        bus.stop()


def test_a_bus_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    """Another local user must not be able to inject news (a forged PSC logout or
    failed logins): the directory must be private."""
    directory = tmp_path / "bus"
    directory.mkdir(mode=0o777)
    os.chmod(directory, 0o777)
    bus = LocalBus(directory, "a" * 16, lambda ch, p: None)
    with pytest.raises(OSError, match="mode 0700"):
        asyncio.run(_start(bus))


async def _start(bus: LocalBus) -> None:
    bus.start()


def test_a_database_path_too_long_for_a_socket_name_gets_a_temporary_directory(
        tmp_path: Path) -> None:
    short = LocalBus.beside(tmp_path / "operator.sqlite3")
    assert short == tmp_path / "operator.sqlite3-bus"
    deep = tmp_path / ("d" * 120) / "operator.sqlite3"
    long = LocalBus.beside(deep)
    assert long != deep.with_name("operator.sqlite3-bus")
    assert len(os.fsencode(long)) + 1 + 16 + len(".sock") <= MAX_SOCKET_PATH
    assert LocalBus.beside(deep) == long  # every process of that database finds it


async def test_folder_news_between_two_hubs_wakes_subscribers_once(tmp_path: Path) -> None:
    first, second = ChangeHub(), ChangeHub()
    first.open_bus(tmp_path / "bus")
    second.open_bus(tmp_path / "bus")
    woken: list[str] = []
    second.subscribe(7, lambda: woken.append("second"))
    first.subscribe(7, lambda: woken.append("first"))
    try:
        first.publish([7])  # a commit in the first process
        await _until(lambda: "second" in woken)
        await asyncio.sleep(0.1)
        assert sorted(woken) == ["first", "second"]  # no echo back to the first
    finally:
        await first.stop()
        await second.stop()


async def test_other_channels_reach_their_followers(tmp_path: Path) -> None:
    first, second = ChangeHub(), ChangeHub()
    first.open_bus(tmp_path / "bus")
    second.open_bus(tmp_path / "bus")
    got: list[str | None] = []
    second.follow("mssante_psc_ended", got.append)
    try:
        first.send("mssante_psc_ended", "payload")
        first.send(CHANNEL, f"{first.token}:3")
        await _until(lambda: got)
        assert got == ["payload"]
    finally:
        await first.stop()
        await second.stop()


async def test_an_oversized_payload_is_not_sent_cut(tmp_path: Path) -> None:
    heard: list[tuple[str, str]] = []
    sender = LocalBus(tmp_path / "bus", "a" * 16, lambda ch, p: None)
    receiver = LocalBus(tmp_path / "bus", "b" * 16, lambda ch, p: heard.append((ch, p)))
    sender.start()
    receiver.start()
    try:
        sender.send("c", "x" * 5000)
        sender.send("c", "small")
        await _until(lambda: heard)
        assert heard == [("c", "small")]
    finally:
        sender.stop()
        receiver.stop()
