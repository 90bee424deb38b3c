"""The controller's work queue: dedup, one worker per key, backoff."""

from __future__ import annotations

import threading

from vegd.controller.queue import WorkQueue


def test_adds_of_a_waiting_key_collapse():
    q = WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get(0) == "a" and q.get(0) == "b" and q.get(0) is None


def test_a_key_added_while_processing_comes_back_once_after_done():
    q = WorkQueue()
    q.add("a")
    assert q.get(0) == "a"
    q.add("a")
    q.add("a")
    assert q.get(0) is None  # never handed out twice at the same time
    q.done("a")
    assert q.get(0) == "a"
    q.done("a")
    assert q.get(0) is None


def test_rate_limited_delays_grow_and_are_capped_and_forget_resets():
    q = WorkQueue(base_delay=0.01, max_delay=0.04)
    delays = [q.add_rate_limited("a") for _ in range(5)]
    assert delays == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert q.failures("a") == 5
    q.forget("a")
    assert q.failures("a") == 0 and q.add_rate_limited("a") == 0.01


def test_delayed_key_is_handed_out_when_due():
    q = WorkQueue()
    q.add_after("a", 0.05)
    assert q.get(0) is None
    assert q.get(timeout=2) == "a"


def test_shut_down_wakes_a_blocked_worker():
    q = WorkQueue()
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.shut_down()
    t.join(timeout=2)
    assert not t.is_alive() and got == [None]



def test_oldest_age_is_the_head_of_the_queue(monkeypatch):
    from vegd.controller import queue as queue_module

    now = [100.0]
    monkeypatch.setattr(queue_module.time, "monotonic", lambda: now[0])
    q = WorkQueue()
    assert q.oldest_age() == 0.0
    q.add("a")
    now[0] += 5
    q.add("b")
    now[0] += 1
    assert q.oldest_age() == 6.0
    assert q.get_batch(1) == ["a"]
    assert q.oldest_age() == 1.0
    assert q.get_batch(2) == ["b"]
    assert q.oldest_age() == 0.0 and not q._ready_since


def test_members_only_until_an_ordinary_add():
    q = WorkQueue()
    q.add("veg:a/pods", full=False)
    q.add("veg:a/full", full=False)
    q.add("veg:a/full")
    assert q.get_batch(10) == ["veg:a/pods", "veg:a/full"]
    assert q.members_only("veg:a/pods") and not q.members_only("veg:a/full")
    # added again while processing: a pod-only add keeps it members-only, an ordinary one not
    q.add("veg:a/pods", full=False)
    q.add("veg:a/full", full=False)
    q.done("veg:a/pods")
    q.done("veg:a/full")
    assert q.get_batch(10) == ["veg:a/pods", "veg:a/full"]
    assert q.members_only("veg:a/pods") and q.members_only("veg:a/full")
    q.add("veg:a/pods")  # dirty with an ordinary add
    q.done("veg:a/pods")
    q.done("veg:a/full")
    assert q.get() == "veg:a/pods" and not q.members_only("veg:a/pods")
    assert not q.members_only("veg:a/full")  # not being processed
    q.done("veg:a/pods")
    q.add_after("veg:a/pods", 0)  # a retry is ordinary
    assert q.get(1) == "veg:a/pods" and not q.members_only("veg:a/pods")
