"""``make down`` (``stack down``) signals only processes whose identity matches the record.

A state file can outlive a reboot; pids start over, so a recorded pid (or a
process group of that id) may now belong to someone else.  The record's
start time is compared with the live process's (psutil) and with the boot
time before anything is signalled.
"""

from __future__ import annotations

import subprocess
import time

import psutil
import pytest

from forestops.local.supervise import ServiceRecord, stop_one

pytestmark = pytest.mark.unit


@pytest.fixture
def orphaned_group():
    """A process group whose leader has exited (and been reaped) while a member lives on."""
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!"], stdout=subprocess.PIPE, start_new_session=True)
    member = psutil.Process(int(leader.stdout.readline()))
    leader.wait()
    leader.stdout.close()
    try:
        yield leader.pid, member
    finally:
        if member.is_running():
            member.kill()
            member.wait(5)


def _record(pid: int, create_time: float) -> ServiceRecord:
    return ServiceRecord("stranger", pid, create_time, ["sh"], "/dev/null")


def test_a_record_from_before_the_boot_signals_nothing(orphaned_group):
    group_id, member = orphaned_group
    assert stop_one(_record(group_id, psutil.boot_time() - 100), timeout=2)
    assert member.is_running() and member.status() != psutil.STATUS_ZOMBIE


def test_a_group_member_older_than_the_record_is_not_ours(orphaned_group):
    group_id, member = orphaned_group
    assert stop_one(_record(group_id, time.time() + 60), timeout=2)
    assert member.is_running() and member.status() != psutil.STATUS_ZOMBIE


def test_our_own_orphaned_group_is_still_stopped(orphaned_group):
    group_id, member = orphaned_group
    stop_one(_record(group_id, member.create_time() - 0.1), timeout=5)
    assert not member.is_running() or member.status() == psutil.STATUS_ZOMBIE
