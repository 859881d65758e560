# meshguard's image for machines with a container engine: one static binary on
# distroless' static base, running as the nonroot user 65532. `make image`
# builds the same layout (binary at /usr/local/bin/meshguard, user 65532,
# entrypoint meshguard) without an engine, as an OCI tarball in dist/.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t meshguard .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
      -ldflags "-s -w -X github.com/meshguard/meshguard/cmd/meshguard/app.Version=${VERSION}" \
      -o /out/meshguard ./cmd/meshguard

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="meshguard" \
      org.opencontainers.image.description="Istio-aware admission webhook and default-deny NetworkPolicy controller" \
      org.opencontainers.image.source="https://github.com/meshguard/meshguard" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/meshguard /usr/local/bin/meshguard
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/meshguard"]
