"""Validates event objects (one JSON object per line of a file) against
docs/schemas/event.schema.json. Run by the unit test of the event payload builders
(tests/unit/test_event_data.cpp); exits non-zero naming each invalid line."""
import json
import pathlib
import sys

import jsonschema


def main(schema_path, events_path):
    schema = json.loads(pathlib.Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    bad = 0
    lines = pathlib.Path(events_path).read_text().splitlines()
    for number, line in enumerate(lines, 1):
        event = json.loads(line)
        for error in validator.iter_errors(event):
            bad += 1
            print(f"line {number} ({event.get('type')}): {error.message} at {list(error.path)}")
    print(f"{len(lines)} events, {bad} errors")
    return 1 if bad or not lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
