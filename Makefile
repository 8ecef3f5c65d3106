# Thin wrappers over the npm scripts, for people who type `make`.
.PHONY: install build typecheck lint test test-unit test-integration control-plane run clean image base-digests generate

IMAGE ?= azure-image-operator:$(shell node -p "require('./package.json').version")

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

generate:
	npm run generate

# The container image (needs a Docker engine; the Dockerfile is checked statically by the unit tests).
image:
	docker build -t $(IMAGE) \
		--build-arg VERSION=$(shell node -p "require('./package.json').version") \
		--build-arg REVISION=$(shell git rev-parse HEAD 2>/dev/null || echo unknown) \
		--build-arg CREATED=$(shell date -u +%Y-%m-%dT%H:%M:%SZ) \
		.

# The current digests of the base images, to refresh the pins in the Dockerfile.
base-digests:
	docker buildx imagetools inspect node:24-bookworm-slim --format '{{json .Manifest.Digest}}'
	docker buildx imagetools inspect gcr.io/distroless/nodejs24-debian12:nonroot --format '{{json .Manifest.Digest}}'
