# Thin wrappers over the npm scripts, for people who type `make`.
.PHONY: install build typecheck lint test test-unit test-integration control-plane run clean

install:
	npm ci

build:
	npm run build

typecheck:
	npm run typecheck

lint:
	npm run lint

test:
	npm test

test-unit:
	npm run test:unit

test-integration:
	npm run test:integration

control-plane:
	npm run control-plane

run:
	npm start

clean:
	rm -rf dist coverage
