# btda container image. Build from the repository root (no container runtime is needed to
# lint this file; CI runs hadolint on it, see .ci/run):
#
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg BRANCH="$(git rev-parse --abbrev-ref HEAD)" -t btda .
#   docker run -d --name btda -p 9881:9881 -p 6884:6884 -p 6884:6884/udp -p 17000:17000/udp \
#     -v btda-data:/var/lib/btda -v "$PWD/torrents:/etc/btda/torrents:ro" btda
#
# .dockerignore leaves .git out of the context, so the revision comes in as a build argument.

# ---- build: the Go toolchain, and a C/C++ compiler for cgo (the uTP library is C++) ----
FROM golang:1.26-bookworm AS build
# Unpinned: Debian stable only takes security fixes, and pinned versions vanish from its mirrors.
# hadolint ignore=DL3008
RUN apt-get update \
	&& apt-get install -y --no-install-recommends g++ \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG REVISION=""
ARG BRANCH=""
ENV CGO_ENABLED=1
RUN REVISION="${REVISION}" BRANCH="${BRANCH}" BUILD_USER=docker scripts/build -o /out/btda

# ---- run: a small Debian (glibc, for the cgo build) as a non-root user ----
FROM debian:bookworm-slim
# ca-certificates: HTTPS trackers. curl: the HEALTHCHECK (the slim image has no HTTP client).
# hadolint ignore=DL3008
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates curl \
	&& rm -rf /var/lib/apt/lists/* \
	&& groupadd --system --gid 10001 btda \
	&& useradd --system --uid 10001 --gid btda --home-dir /var/lib/btda --shell /usr/sbin/nologin btda \
	&& mkdir -p /etc/btda/torrents /var/lib/btda \
	&& chown btda:btda /var/lib/btda
COPY --from=build /out/btda /usr/local/bin/btda
COPY examples/etc/btda/btda.yml /etc/btda/btda.yml
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /var/lib/btda
# The store and the DHT node file.
VOLUME ["/var/lib/btda"]
# /metrics; peers (TCP, and UDP for uTP); the DHT node (UDP).
EXPOSE 9881/tcp 6884/tcp 6884/udp 17000/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
	CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9881/-/healthy"]
ENTRYPOINT ["/usr/local/bin/btda"]
CMD ["run", "--config.file=/etc/btda/btda.yml"]
