# conveyor: multi-stage build. The first stage compiles a release binary; the runtime image is
# Debian slim with that binary, the scenarios, and a non-root user.
#   docker build -t conveyor:local .
#   docker run --rm conveyor:local list
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependencies first, so editing conveyor's sources does not rebuild them: a stub crate with the
# real manifest and lock file.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src tests/it \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/it/main.rs \
    && cargo build --release --locked --bin conveyor \
    && rm -rf src tests
COPY src ./src
COPY tests ./tests
# Touch so cargo sees the real sources as newer than the stub's build.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin conveyor \
    && install -m 0755 target/release/conveyor /usr/local/bin/conveyor

FROM ${RUNTIME_IMAGE}
RUN groupadd --system --gid 10001 conveyor \
    && useradd --system --uid 10001 --gid conveyor --home-dir /app --shell /usr/sbin/nologin conveyor \
    && mkdir -p /app/results \
    && chown conveyor:conveyor /app/results
COPY --from=build /usr/local/bin/conveyor /usr/local/bin/conveyor
COPY scenarios /app/scenarios
WORKDIR /app
USER conveyor:conveyor
# Prometheus metrics (/metrics); bound to 0.0.0.0 only through CONVEYOR_METRICS_ADDR in compose.
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/conveyor"]
CMD ["--help"]
