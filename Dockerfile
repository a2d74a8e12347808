# The oclaw image: one static-enough binary on a minimal base, running as a non-root user
# (65532, the uid the Kubernetes manifests set) with nothing else in it.
#   docker build -t registry.example.com/oclaw/oclaw:0.1.0 .
# Not built by this repository's CI (no image builder with network access runs there).

FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p oclaw \
 && strip target/release/oclaw

# glibc and libgcc only (the binary links nothing else); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/oclaw /usr/bin/oclaw
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/bin/oclaw"]
# Beyond loopback the API requires tokens: set OCLAW_API__TOKENS (the manifests read it from
# the Secret oclaw-api-tokens), or the node refuses to start.
CMD ["serve", "--listen", "0.0.0.0:8080"]
