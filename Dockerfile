# grpc_health_proxy as one binary in a distroless image, also reachable as grpc_health_probe.
#
#   docker build -t grpc_health_proxy .
#   docker run --rm grpc_health_proxy -version
#   docker run --rm -p 8080:8080 grpc_health_proxy -grpcaddr=host.docker.internal:50051 \
#     -http-listen-addr=0.0.0.0:8080
#
# The build needs internet once: `deno compile` downloads Deno's runtime (denort) for the target.
# Expected size, on paper (no Docker engine where this was written): ~125 MB. distroless/cc ~23 MB;
# the binary ~100 MB, that is Deno's runtime (~82 MB; denoland/deno#34577 shows a 2026
# `deno compile` reporting an 81.5 MB runtime for aarch64 macOS) and the npm packages the program
# reaches (~20 MB in Deno's cache). Before the symlink the binary was copied twice: ~225 MB.
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
# One binary; grpc-health-probe's path is a symlink to it. The program picks probe mode from the
# name it is invoked by (argv[0]), so exec probes and HEALTHCHECKs written for the Go tool work
# unchanged. Made here: distroless has no shell.
# Relative, so it resolves both here and in the image; run through the link without -addr, probe
# mode must say so with exit 1 (server and runcli would exit 255).
RUN mkdir -p /out/bin && cp dist/grpc_health_proxy /out/grpc_health_proxy && \
    ln -s ../grpc_health_proxy /out/bin/grpc_health_probe && \
    (/out/bin/grpc_health_probe >/dev/null 2>&1; test $? -eq 1)

# Runtime: glibc and libgcc only, which is all Deno's runtime links against; no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
# /grpc_health_proxy and the symlink /bin/grpc_health_probe (a directory copy keeps symlinks;
# distroless's /bin is a directory, so the link lands beside what is there).
COPY --from=build /out/ /
USER nonroot
# Health (-http-listen-addr) and metrics (-metrics-http-listen-addr) ports.
EXPOSE 8080 9000
ENTRYPOINT ["/grpc_health_proxy"]
