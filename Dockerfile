# syntax=docker/dockerfile:1
# Multi-stage build: a static zkgate and echo-backend on a small non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/zkgate/zkgate/internal/version.Version=${VERSION}" \
      -o /out/ ./cmd/zkgate ./cmd/echo-backend
# The membership snapshot's directory, owned by the non-root user so that a
# volume mounted there (docker-compose.yml) starts writable.
RUN mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/zkgate /out/echo-backend /usr/local/bin/
COPY configs/ /etc/zkgate/
COPY --from=build --chown=65532:65532 /out/state /var/lib/zkgate
USER nonroot:nonroot
EXPOSE 8080 9901
# No shell in this image: the binary checks its own /readyz.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/zkgate", "healthcheck", "--url", "http://127.0.0.1:9901/readyz"]
ENTRYPOINT ["/usr/local/bin/zkgate"]
CMD ["serve", "--config", "/etc/zkgate/gateway.docker.yaml"]
