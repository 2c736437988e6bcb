# Thin wrappers over the scripts, for those who type `make`.
.PHONY: build test

# A versioned ./btda (VERSION, git revision and branch, build user and date).
build:
	scripts/build

# The whole test suite, race detector on, in a loopback-only network namespace.
test:
	scripts/test
