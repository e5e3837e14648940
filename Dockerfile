# syntax=docker/dockerfile:1
# sealgate's container image: a release build on Debian 12 (bookworm), then
# only the binary on distroless's cc image (glibc, libgcc, CA roots, tzdata;
# no shell, no package manager), running as its `nonroot` user (65532).
#
#   docker build -t sealgate .        # or: podman build / buildah bud
#   docker run --rm -p 7233:7233 -p 9090:9090 --read-only \
#     -v "$PWD/sealgate.toml:/etc/sealgate/sealgate.toml:ro" sealgate
#
# docs/deploy.md ("A container") has the details.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The binary's file:line tables go to /sealgate.debug beside it
# (scripts/build-release): a panic's backtrace names files.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY proto proto
# Cargo.toml names the benches: the manifest does not load without them.
COPY benches benches
COPY scripts/build-release scripts/build-release
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/build-release /sealgate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sealgate /sealgate.debug /
# Listen on every interface of the container's own network namespace.
# sealgate still refuses a non-loopback gRPC listener unless the config
# sets [inbound] auth, or allow_unauthenticated = true for a private network.
ENV SEALGATE_LISTEN=0.0.0.0:7233 \
    SEALGATE_ADMIN_LISTEN=0.0.0.0:9090 \
    SEALGATE_CODEC_SERVER_LISTEN=0.0.0.0:8081
# gRPC (workers), Codec Server (when [codec_server] is configured), admin
# (/metrics, /live, /ready).
EXPOSE 7233 8081 9090
USER 65532:65532
# SIGTERM drains for [proxy] shutdown_grace: give `docker stop -t` more.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/sealgate"]
CMD ["run", "--config", "/etc/sealgate/sealgate.toml", "--log-json"]
