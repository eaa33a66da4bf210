"""What the Python benchmarks share: items 0..count-1 handed out to `clients` threads, each with
its own HTTP session."""
import threading

import requests


def for_each_item(count, clients, work):
    """Calls work(session, i) for every i in range(count), from `clients` threads; re-raises
    the first exception a thread met."""
    counter = iter(range(count))
    lock = threading.Lock()
    errors = []

    def worker():
        with requests.Session() as session:
            while not errors:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                try:
                    work(session, i)
                except Exception as e:  # noqa: BLE001 - handed to the caller
                    errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
