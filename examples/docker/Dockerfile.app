# An application image with grpc_health_probe inside: Docker's HEALTHCHECK (and Kubernetes exec
# probes, examples/k8s/exec-probe-deployment.yaml) run it to ask the app's gRPC health service.
#
# From the repository root (this file's Dockerfile.app.dockerignore sets the context):
#   docker build -t grpc_health_proxy .
#   docker build -f examples/docker/Dockerfile.app -t echo-server .
#   docker run -d --name echo echo-server
#   docker inspect --format '{{.State.Health.Status}}' echo    # starting, then healthy

# The image built from this repository's Dockerfile (or a pushed tag of it).
ARG PROXY_IMAGE=grpc_health_proxy:latest
FROM ${PROXY_IMAGE} AS proxy

FROM denoland/deno:debian-2.9.3
WORKDIR /app
USER deno
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY proto/health.proto proto/
COPY examples/echo.proto examples/echo_server.ts examples/
# A copy of the same binary under grpc-health-probe's name and path: it runs in probe mode.
COPY --from=proxy /bin/grpc_health_probe /bin/grpc_health_probe
EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/bin/grpc_health_probe", "-addr=localhost:50051"]
CMD ["deno", "run", "--allow-net", "--allow-read", "--allow-env", "examples/echo_server.ts", "--port", "50051", "--host", "0.0.0.0"]
