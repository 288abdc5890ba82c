"""moto's server with its SQS made constant-time per message, for benchmarks that fill a queue.

Why: moto 5's SQS does work proportional to the queue depth for *every message* it sends, receives or
deletes — `send_message` and the retention check in `receive_message` read `Queue.attributes`, which
recounts every message three times (visible, in flight, delayed) through a slow datetime-based clock,
and `delete_message` rebuilds the whole message list. Measured on this 2-core machine (stock moto
server): SendMessageBatch(10) takes 0.10 s at depth 100 and 0.3 s at depth 1 000; ReceiveMessage(10)
0.17 s at depth 100, 1.0 s at depth 1 000 and ~1.6 s with 1 000 in flight. A red-packet rain puts
thousands of credit messages in the queue at once, so a benchmark on stock moto measures moto.

The patches keep moto's semantics; only the cost changes:
- the clock used by SQS messages is `time.time()` (moto's own returns the same value, slowly);
- the retention check reads the queue's retention period instead of building every attribute;
- the three `ApproximateNumberOf*` counts are recomputed at most once per `COUNT_TTL_S` — AWS documents
  them as approximate and eventually consistent, and no rewardgate path reads them;
- `delete_message` finds the message through an index of receipt handles.

Run as `python -m bench.moto_server -H 127.0.0.1 -p PORT` (the same arguments as `python -m moto.server`).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from rewardgate_ops import services

ROOT = Path(__file__).resolve().parent.parent
COUNT_TTL_S = 1.0

_handles: dict[str, Any] = {}
_handles_lock = threading.Lock()


def _cached_count(name: str, compute: Any) -> property:
    def getter(queue: Any) -> int:
        cache = queue.__dict__.setdefault("_rg_counts", {})
        hit = cache.get(name)
        now = time.monotonic()
        if hit is not None and now - hit[0] < COUNT_TTL_S:
            return hit[1]
        value = compute(queue)
        cache[name] = (now, value)
        return value

    return property(getter)


def apply_patches() -> None:
    """Patch moto's SQS models in this process (call before moto's server starts)."""
    from moto.core import utils
    from moto.sqs import models

    slow_unix_time, slow_unix_time_millis = utils.unix_time, utils.unix_time_millis

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else slow_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else slow_unix_time_millis(dt)

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        return int(queue.message_retention_period) + message.sent_timestamp / 1000 > time.time()

    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period

    for name in ("approximate_number_of_messages", "approximate_number_of_messages_not_visible",
                 "approximate_number_of_messages_delayed"):
        setattr(models.Queue, name, _cached_count(name, getattr(models.Queue, name).fget))

    mark_received = models.Message.mark_received

    def indexed_mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        mark_received(self, visibility_timeout=visibility_timeout)
        with _handles_lock:
            _handles[self.receipt_handle] = self

    models.Message.mark_received = indexed_mark_received

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return
        message = _handles.get(receipt_handle)
        if message is None or message not in self._messages:
            raise models.ReceiptHandleIsInvalid()
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)
        # A new list, as moto builds one: other request threads may be iterating the old one.
        self._messages = [m for m in self._messages if m is not message]
        with _handles_lock:
            for handle in message.all_receipt_handles:
                _handles.pop(handle, None)

    models.Queue.delete_message = delete_message


def start(port: int, log_path: Path | None = None, timeout_s: float = 60) -> services.Service:
    """Start the patched moto server on 127.0.0.1:`port`, like `services.start_moto_server` starts moto's own."""
    if services.port_open(port):
        raise services.ServiceError(f"port {port} for the moto server is already in use")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    service = services.Service(name="moto server (bench)", port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout_s
    while not services.port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            service.stop()
            tail = log_path.read_text()[-2000:] if log_path and log_path.exists() else ""
            raise services.ServiceError(f"the bench moto server did not start on port {port}\n{tail}")
        time.sleep(0.1)
    return service


def main() -> None:
    """Entry point: patch, then hand over to moto's own server main."""
    apply_patches()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
