# The oclaw image: one static-enough binary on a minimal base, running as a non-root user
# (65532, the uid the Kubernetes manifests set) with nothing else in it.
#   docker build -t registry.example.com/oclaw/oclaw:0.1.0 .
# It pulls its base images, which CI cannot; CI builds deploy/image/Containerfile instead (the
# same layout from scratch, with the binary it just built) and runs it.

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
