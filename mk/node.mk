# Node.js SDK @velocity/core (clients/node, issue 15). `npm ci` installs the
# dev tools (typescript, @types/node) from package-lock.json; after the first
# fetch it works offline from npm's cache. The SDK itself has no runtime deps.
# `npm run build` emits ES modules (dist/) and CommonJS (dist/cjs/), each with
# its type declarations; package.json's exports map picks one per importer.

TEST_TARGETS += test-node

NODE_SDK := clients/node
NPM ?= npm

.PHONY: test-node node-sdk bench-node

$(NODE_SDK)/node_modules/.package-lock.json: $(NODE_SDK)/package-lock.json
	cd $(NODE_SDK) && $(NPM) ci --no-audit --no-fund --prefer-offline

node-sdk: $(NODE_SDK)/node_modules/.package-lock.json ## Build the Node.js SDK (tsc: dist/ ESM, dist/cjs CommonJS; examples type-checked)
	cd $(NODE_SDK) && $(NPM) run --silent build && npx tsc -p tsconfig.examples.json

test-node: install node-sdk ## Node.js SDK: vectors, fuzz, unit, integration vs real engines, cross-language, npm pack
	cd $(NODE_SDK) && rm -rf build && npx tsc -p tsconfig.test.json
	cd $(NODE_SDK) && VELOCITY_PYTHON=$(CURDIR)/$(PY) node --test --test-concurrency=1 build/test/*.test.js

bench-node: install node-sdk ## @velocity/core vs Velocity and ioredis vs redis-server (docs/benchmarks-node.md)
	cd bench/node && $(NPM) ci --no-audit --no-fund --prefer-offline
	taskset -c 1 node bench/node/bench.mjs
