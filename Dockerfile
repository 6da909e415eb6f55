# grpc_health_proxy as one binary in a distroless image, also reachable as grpc_health_probe.
#
#   docker build -t grpc_health_proxy .
#   docker run --rm grpc_health_proxy -version
#   docker run --rm -p 8080:8080 grpc_health_proxy -grpcaddr=host.docker.internal:50051 \
#     -http-listen-addr=0.0.0.0:8080
#
# The build needs internet once: `deno compile` downloads Deno's runtime (denort) for the target.
# In the image the health listener must be given a non-loopback address, as above: the default
# (localhost:8080) is unreachable from outside the container.

# Build stage: the Deno of .ci/deno-version (tests/dockerfile_test.ts checks they match).
FROM denoland/deno:debian-2.9.3 AS build
WORKDIR /src
# Dependencies first: a source change does not download the npm packages again.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY main.ts ./
COPY lib/ lib/
# `deno task compile`: explicit permissions baked into the binary (never -A).
RUN deno task compile && ./dist/grpc_health_proxy -version

# Runtime: glibc and libgcc only, which is all Deno's runtime links against; no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/dist/grpc_health_proxy /grpc_health_proxy
# grpc-health-probe's path, so exec probes and HEALTHCHECKs written for it work unchanged. A copy,
# not a symlink: the program picks probe mode from its own path (Deno.execPath(), which resolves
# symlinks), and distroless has no shell to make one anyway.
COPY --from=build /src/dist/grpc_health_proxy /bin/grpc_health_probe
USER nonroot
# Health (-http-listen-addr) and metrics (-metrics-http-listen-addr) ports.
EXPOSE 8080 9000
ENTRYPOINT ["/grpc_health_proxy"]
