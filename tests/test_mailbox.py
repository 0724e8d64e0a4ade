"""Where units started and the FM calls to record pass from worker threads to one reader."""

from __future__ import annotations

import threading

from dgm.executors.mailbox import Mailbox


def test_nothing_put_while_the_reader_takes_is_lost():
    box: Mailbox[int] = Mailbox()
    writers = [
        threading.Thread(target=lambda w=w: [box.put(w * 100_000 + i) for i in range(20_000)])
        for w in range(4)
    ]
    taken: list[int] = []
    for writer in writers:
        writer.start()
    while any(w.is_alive() for w in writers):
        taken += box.take()
    taken += box.take()
    assert sorted(taken) == sorted(w * 100_000 + i for w in range(4) for i in range(20_000))
    assert box.take() == []
