# The two commands of a fresh machine: `make run` serves Tally on its embedded database,
# `make test` runs the whole suite against a real PostgreSQL it starts itself.
.PHONY: run test build release bench clean

run:
	scripts/run.sh

test:
	scripts/test.sh

build:
	swift build

release:
	swift build -c release --product tally

bench:
	scripts/bench.sh

clean:
	rm -rf .build
