"""Zone for bench/delivery.sh, in the JSON form tests/tools/dns_server.py serves.

DOMAINS domains d0.bench.test .. d{DOMAINS-1}.bench.test, domain i with one MX to mx{i % SINKS},
and mx{k}.bench.test -> 127.0.0.{10 + k}: the smtp-sink listening on that address. So the
domains are spread evenly over the sinks, and each sink is one MX "site" for Petrel.

Usage: /usr/bin/python3 bench/delivery_zone.py DOMAINS SINKS > zone.json
"""
import json
import sys


def zone(domains, sinks):
    records = [{"name": f"d{i}.bench.test", "type": "MX", "preference": 10,
                "exchange": f"mx{i % sinks}.bench.test"} for i in range(domains)]
    records += [{"name": f"mx{k}.bench.test", "type": "A", "address": f"127.0.0.{10 + k}"}
                for k in range(sinks)]
    return {"records": records}


if __name__ == "__main__":
    json.dump(zone(int(sys.argv[1]), int(sys.argv[2])), sys.stdout, indent=1)
    sys.stdout.write("\n")
