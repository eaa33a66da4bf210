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


def start_petrel(petrel, work, ready_url, timeout=60):
    """Starts `petrel serve` with work/petrel.toml, its output appended to work/petrel.log, and
    waits until ready_url answers 200; returns the process."""
    import subprocess
    import time
    p = subprocess.Popen([petrel, "serve", "--config", str(work / "petrel.toml")],
                         stdout=open(work / "petrel.log", "a"), stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(ready_url, timeout=2).status_code == 200:
                return p
        except requests.RequestException:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"petrel never became ready; see {work / 'petrel.log'}")
