# Shortcuts for scripts/dev, which does the work (and needs nothing but bash on Debian 12).
.PHONY: run test build bench clean
run:
	scripts/dev run
test:
	scripts/dev test
build:
	scripts/dev build
bench:
	scripts/dev bench
clean:
	rm -rf build
